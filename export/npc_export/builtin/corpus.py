"""Seeded generator of the NPC dialogue corpus: personas x situations x moods -> in-character replies.

Every sample is one chat turn in the fixed format other components depend on:

    <s><|system|>You are Bram, the village guard. Traits: stern, loyal. Mood: suspicious. Situation: the
    player is near the gate at night.<|end|><|user|>Let me through.<|end|><|assistant|>[refuse] The gate
    stays shut until dawn, stranger.<|end|></s>

The reply always starts with an action tag from `ACTIONS`. The action is a rule of (persona, situation,
mood) (see `choose_action`), and the spoken line is assembled from many slot-filled phrasings: a mood
opener, a core line for (situation, action), role flavour (items, workplace, work, catchphrases). Whole
(role, situation) combinations are held out (`HELDOUT_COMBOS`), so evaluation measures whether the model
answers in character and on topic for combinations it never saw.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ACTIONS: list[str] = [
    "idle", "greet", "talk", "trade", "refuse", "warn", "attack", "flee", "call_guards", "patrol",
    "follow", "give",
]
MOODS: tuple[str, ...] = ("calm", "angry", "afraid", "cheerful", "suspicious", "sad", "tired")

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
# Fixed ids: the runtime, the exporter and the clients rely on them.
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, SYSTEM, USER, ASSISTANT, END)


# --------------------------------------------------------------------------------------------------
# Personas


@dataclass(frozen=True)
class Persona:
    role: str                      # key, e.g. "guard"
    titles: tuple[str, ...]        # "the village guard" (after "You are NAME, ")
    names: tuple[str, ...]
    traits: tuple[str, ...]        # two are drawn per sample
    kind: str                      # guard | trader | villager | rogue: drives the action rules
    brave: bool                    # fights back when threatened or attacked
    sells: bool                    # has goods to trade
    address: tuple[str, ...]       # how this persona calls the player
    items: tuple[str, ...]         # what this persona deals in / carries
    workplace: tuple[str, ...]     # "the gate", "my stall"
    work: tuple[str, ...]          # a sentence about their work, first person
    tics: tuple[str, ...]          # catchphrases that close a line


PERSONAS: tuple[Persona, ...] = (
    Persona(
        role="guard", titles=("the village guard", "the gate guard", "a guard of the watch"),
        names=("Bram", "Hilda", "Osric", "Garrick", "Maren", "Tobias"),
        traits=("stern", "loyal", "dutiful", "gruff", "honest", "watchful"),
        kind="guard", brave=True, sells=False,
        address=("stranger", "citizen", "traveler", "you there"),
        items=("my spear", "a spare shield", "a watch horn", "the gate key", "a patrol lantern"),
        workplace=("the gate", "the watchtower", "the barracks", "the town wall"),
        work=("I keep the peace in this town.", "The captain wants this gate watched day and night.",
              "My watch ends at dawn.", "I have walked this wall for ten years."),
        tics=("Keep the peace.", "The law is the law.", "Move along.", "By order of the captain."),
    ),
    Persona(
        role="merchant", titles=("a traveling merchant", "the market trader", "the spice merchant"),
        names=("Selim", "Ottoline", "Varro", "Mirela", "Dashiell", "Fenna"),
        traits=("shrewd", "talkative", "greedy", "charming", "cautious", "generous"),
        kind="trader", brave=False, sells=True,
        address=("friend", "good customer", "traveler", "my friend"),
        items=("silk scarves", "spices from the south", "a silver ring", "dried figs", "a fine map",
               "scented oil", "a copper kettle"),
        workplace=("my stall", "my cart", "the market square", "my shop"),
        work=("I buy cheap and sell fair, mostly.", "My cart has crossed three kingdoms.",
              "Business has been slow since the bridge fell.", "Every coin counts in my trade."),
        tics=("Coin is coin.", "A fair price for a fair face.", "Come back soon!", "Business is business."),
    ),
    Persona(
        role="blacksmith", titles=("the village blacksmith", "the smith", "the armorer"),
        names=("Gunnar", "Brenna", "Torvald", "Ingrid", "Hobb", "Sigrun"),
        traits=("strong", "blunt", "hardworking", "proud", "patient", "short-tempered"),
        kind="trader", brave=True, sells=True,
        address=("lad", "friend", "customer", "traveler"),
        items=("a steel sword", "horseshoes", "an iron helm", "a sharp axe", "nails", "a chain shirt"),
        workplace=("my forge", "the smithy", "my anvil", "the workshop"),
        work=("My forge has been hot since sunrise.", "I shoe every horse in this valley.",
              "Good steel takes time and sweat.", "The anvil does not wait."),
        tics=("Steel does not lie.", "Strike while the iron is hot.", "Mind the sparks.", "Hammer and heart."),
    ),
    Persona(
        role="innkeeper", titles=("the innkeeper", "the keeper of the Prancing Goat", "the tavern owner"),
        names=("Rosalind", "Barnaby", "Molly", "Cedric", "Agatha", "Wendel"),
        traits=("friendly", "nosy", "warm", "busy", "gossipy", "thrifty"),
        kind="trader", brave=False, sells=True,
        address=("dear", "love", "traveler", "friend"),
        items=("a warm room", "a mug of ale", "hot stew", "fresh bread", "a bottle of wine", "a bath"),
        workplace=("the inn", "the tavern", "the common room", "my bar"),
        work=("Every traveler passes through my inn.", "The stew has been on since noon.",
              "I hear every story told at my bar.", "Rooms are clean and beds are soft."),
        tics=("Mind your manners in my house.", "Wipe your boots.", "The fire is warm.", "Drink up, dear."),
    ),
    Persona(
        role="farmer", titles=("a farmer", "the old farmer", "a farmhand"),
        names=("Jory", "Elsie", "Amos", "Nell", "Wat", "Perrin"),
        traits=("simple", "hardworking", "kind", "stubborn", "shy", "superstitious"),
        kind="villager", brave=False, sells=True,
        address=("friend", "stranger", "good sir", "traveler"),
        items=("fresh eggs", "a sack of turnips", "apples", "goat milk", "a bale of hay", "honey"),
        workplace=("my field", "the barn", "my farm", "the orchard"),
        work=("The harvest will not gather itself.", "Up before the rooster, every day.",
              "The rain was good for the barley this year.", "My cows need milking soon."),
        tics=("Good soil, good life.", "Mind the mud.", "Rain is coming, I feel it.", "Aye."),
    ),
    Persona(
        role="priest", titles=("the village priest", "a wandering priest", "the chapel priest"),
        names=("Father Anselm", "Mother Iris", "Brother Cole", "Sister Maud", "Father Edric", "Sister Lena"),
        traits=("pious", "gentle", "wise", "solemn", "forgiving", "stern"),
        kind="villager", brave=False, sells=False,
        address=("my child", "pilgrim", "friend", "traveler"),
        items=("a blessing", "holy water", "a prayer candle", "a healing salve", "bread for the poor"),
        workplace=("the chapel", "the shrine", "the temple steps", "the graveyard"),
        work=("I tend the chapel and the souls who come to it.", "The bells ring at dusk, and I ring them.",
              "I pray for this village every morning.", "The poor eat at the chapel door."),
        tics=("The light keeps you.", "Peace be with you.", "Go with grace.", "May the gods forgive us."),
    ),
    Persona(
        role="thief", titles=("a thief", "a pickpocket of the docks", "a shady rogue"),
        names=("Nim", "Vex", "Sly Pete", "Kestrel", "Rook", "Lira"),
        traits=("sly", "nimble", "greedy", "witty", "cowardly", "charming"),
        kind="rogue", brave=True, sells=True,
        address=("pal", "friend", "mark", "sweetheart"),
        items=("a stolen locket", "lockpicks", "a forged pass", "a dagger", "a purse of unknown origin"),
        workplace=("the alley", "the docks", "the back streets", "the shadows"),
        work=("Nobody sees me unless I want them to.", "The guards are lazy after midnight.",
              "Every lock has a secret.", "I find things before they are lost."),
        tics=("No questions asked.", "You never saw me.", "Quick hands, quick wits.", "Heh."),
    ),
    Persona(
        role="child", titles=("a village child", "the miller's kid", "a curious child"),
        names=("Pip", "Tilly", "Wren", "Milo", "Dot", "Finn"),
        traits=("curious", "playful", "shy", "brave", "cheeky", "talkative"),
        kind="villager", brave=False, sells=False,
        address=("mister", "miss", "hey you", "big person"),
        items=("a wooden sword", "a shiny pebble", "a frog", "a honey cake", "my kite"),
        workplace=("the well", "the village green", "the haystack", "my hiding place"),
        work=("Mama says I can play until supper.", "I'm the fastest runner in the village!",
              "I found a secret tunnel yesterday.", "I'm gonna be a knight someday."),
        tics=("Mama says so!", "That's what I heard!", "Race you!", "Hee hee."),
    ),
    Persona(
        role="hunter", titles=("the hunter", "a trapper of the woods", "the tracker"),
        names=("Roderick", "Ysolde", "Caddoc", "Freya", "Orin", "Sable"),
        traits=("quiet", "patient", "keen-eyed", "wary", "tough", "lonely"),
        kind="guard", brave=True, sells=True,
        address=("stranger", "townsfolk", "friend", "traveler"),
        items=("wolf pelts", "venison", "a hunting bow", "arrows", "a rabbit snare"),
        workplace=("the woods", "my camp", "the hunting trail", "the edge of the forest"),
        work=("I track game from dawn to dusk.", "The wolves have come closer this winter.",
              "The forest feeds me if I respect it.", "I know every trail in these woods."),
        tics=("The woods are listening.", "Walk softly.", "Keep your eyes open.", "Hm."),
    ),
    Persona(
        role="healer", titles=("the village healer", "the herbalist", "a wise woman"),
        names=("Morwen", "Alder", "Elowen", "Tamsin", "Bertil", "Juniper"),
        traits=("caring", "calm", "wise", "tired", "kind", "strict"),
        kind="villager", brave=False, sells=True,
        address=("dear", "child", "traveler", "patient"),
        items=("a healing potion", "bandages", "willow bark tea", "a poultice", "sleeping draught"),
        workplace=("my hut", "the herb garden", "the sickroom", "my workbench"),
        work=("I mix herbs for every fever in the valley.", "The sick come to me day and night.",
              "My garden grows what the sick need.", "I set three broken bones this week."),
        tics=("Rest and drink water.", "Herbs heal slowly but surely.", "Be well.", "Breathe deep."),
    ),
    Persona(
        role="bard", titles=("a traveling bard", "the minstrel", "a lute player"),
        names=("Lysander", "Carys", "Jasper", "Melody", "Tamlin", "Odette"),
        traits=("witty", "vain", "cheerful", "romantic", "dramatic", "curious"),
        kind="villager", brave=False, sells=True,
        address=("friend", "dear listener", "good traveler", "my muse"),
        items=("a song", "a lute string", "a map of the old roads", "a tale for a coin", "a flute"),
        workplace=("the stage", "the tavern corner", "the town square", "the road"),
        work=("I sing of heroes, for a coin.", "My ballads are known in four towns.",
              "Every tale I tell is mostly true.", "I am writing a song about this very village."),
        tics=("Ah, what a tale!", "Sing it with me!", "Fame awaits!", "La la la."),
    ),
    Persona(
        role="miner", titles=("a miner", "the old miner", "a digger from the hills"),
        names=("Durk", "Greta", "Bolt", "Hanne", "Stig", "Marta"),
        traits=("tough", "grumpy", "loyal", "dusty", "plainspoken", "strong"),
        kind="villager", brave=True, sells=True,
        address=("friend", "lad", "surface dweller", "stranger"),
        items=("iron ore", "a lump of coal", "a raw gem", "a pickaxe", "a miner's lamp"),
        workplace=("the mine", "the quarry", "the tunnels", "the hillside"),
        work=("Twelve hours in the dark, every day.", "The deep tunnel flooded last week.",
              "There is silver in these hills, I know it.", "My pick has broken more rock than you've seen."),
        tics=("Dig deep.", "Mind your head.", "Dark down there.", "Rock and ruin."),
    ),
)
PERSONA_BY_ROLE: dict[str, Persona] = {p.role: p for p in PERSONAS}

# World slots shared by all personas.
TOWNS = ("Oakridge", "Millbrook", "Stonehaven", "Ashford", "Greywater", "Thornfield")
PLACES = ("the old mill", "the chapel", "the market", "the north bridge", "the well", "the lighthouse",
          "the ruined tower", "the harbor", "the crossroads", "the lord's keep", "the cemetery", "the mine")
DIRECTIONS = ("north along the river", "past the well and to the left", "east, beyond the fields",
              "down the hill, then west", "through the south gate", "across the bridge")
TIMES = ("at dawn", "at noon", "at night", "at dusk", "in the rain", "on market day", "in the morning fog")
MONSTERS = ("wolves", "bandits", "trolls", "goblins", "ghosts", "giant spiders")
RUMORS = (
    "{monster} have been seen near {place}.",
    "the lord's daughter ran off with a bard.",
    "there is treasure buried under {place}.",
    "someone poisoned the well at {town}.",
    "the old mine is haunted.",
    "a dragon was spotted over the hills.",
    "the tax collector comes next week.",
    "strangers camp by {place} every night.",
)
PLAYER_ITEMS = ("a sword", "a dagger", "an axe", "a torch", "a crossbow", "a club")


# --------------------------------------------------------------------------------------------------
# Situations


@dataclass(frozen=True)
class Situation:
    key: str
    scenes: tuple[str, ...]        # the "Situation:" field of the system prompt
    user_lines: tuple[str, ...]    # player utterances or plain event descriptions


SITUATIONS: tuple[Situation, ...] = (
    Situation("greet",
              ("a stranger walks up to you at {workplace} {time}.", "the player approaches you {time}.",
               "a traveler you have never seen stops by {workplace}."),
              ("Hello there.", "Good day!", "Hi. Who are you?", "Greetings, {name}.", "Hey.",
               "Well met.", "The player waves at you.", "Nice to meet you.")),
    Situation("idle",
              ("the player lingers near {workplace} {time}.", "someone stands nearby without a word.",
               "the player has been watching you for a while."),
              ("...", "The player stands there silently.", "The player leans on the wall and watches you.",
               "Hm.", "The player says nothing.")),
    Situation("directions",
              ("a lost traveler stops you {time}.", "the player looks at a map near {workplace}.",
               "the player seems lost in {town}."),
              ("How do I get to {place}?", "Where is {place}?", "Can you show me the way to {place}?",
               "I'm lost. Which way to {place}?", "Is {place} far from here?",
               "Do you know the road to {place}?")),
    Situation("trade",
              ("the player holds a purse of coins at {workplace}.", "a customer looks over your goods {time}.",
               "the player wants to buy something {time}."),
              ("What do you have for sale?", "I want to buy {item}.", "How much for {item}?",
               "Can we trade?", "Show me your wares.", "I have gold. What can it buy?",
               "I need {item}. Name your price.")),
    Situation("threaten",
              ("the player stands too close with {weapon} drawn.", "an armed stranger blocks your way {time}.",
               "the player is shouting at you at {workplace}."),
              ("Give me everything you have, or else.", "Do as I say or you'll get hurt.",
               "I could end you right here.", "Hand over {item} or I cut you.",
               "The player points {weapon} at you.", "Nobody will miss you if you vanish.",
               "The player cracks their knuckles and steps closer.")),
    Situation("steal",
              ("the player is caught with a hand in your things at {workplace}.",
               "you see the player slip something into a pocket {time}.",
               "the player thinks you are not looking."),
              ("The player steals {item} from you.", "The player grabs {item} and hides it.",
               "The player snatches {item} from {workplace}.", "The player pockets {item} and walks off.",
               "I'm just looking, I swear.", "What? I didn't take anything.")),
    Situation("rumors",
              ("the player sits down near you {time}.", "the player leans in to talk quietly at {workplace}.",
               "a curious traveler wants news of {town}."),
              ("Heard any rumors lately?", "What's the news around here?", "Anything strange going on?",
               "Tell me what people are whispering about.", "What do you know about {place}?",
               "Any gossip?")),
    Situation("bribe",
              ("the player holds out a heavy purse {time}.", "the player slides coins toward you at {workplace}.",
               "the player wants a favor and has gold."),
              ("Here are {gold} gold. Look the other way.", "Take this gold and forget you saw me.",
               "{gold} gold if you let me pass.", "The player offers you {gold} gold coins.",
               "Everyone has a price. What's yours?", "A little gold for a little silence?")),
    Situation("wounded",
              ("the player stumbles toward you, bleeding {time}.", "the player collapses near {workplace}.",
               "the player is badly hurt after a fight with {monster}."),
              ("Help... I'm hurt.", "The player is bleeding and can barely stand.", "Please, I need a healer.",
               "{monster} attacked me. I'm wounded.", "The player falls to one knee, wounded.",
               "I think my arm is broken.")),
    Situation("attack",
              ("the player draws {weapon} and charges at you.", "a fight breaks out at {workplace} {time}.",
               "the player lunges at you without warning."),
              ("The player attacks you with {weapon}.", "The player swings {weapon} at you.",
               "Die!", "The player punches you in the face.", "The player charges at you, screaming.",
               "Take this!")),
    Situation("quest",
              ("the player asks around for work {time}.", "an adventurer offers help at {workplace}.",
               "the player looks for a task in {town}."),
              ("Do you have any work for me?", "I'm looking for a quest.", "Need any help with anything?",
               "I can fight. Any job for me?", "Is there something I can do for you?",
               "Any troubles I could fix?")),
    Situation("help",
              ("the player asks you to come along {time}.", "the player needs a companion for the road.",
               "the player wants help with a dangerous task."),
              ("Will you come with me to {place}?", "Follow me, I need your help.",
               "Can you help me fight {monster}?", "Join me, I could use a hand.",
               "Come with me, quickly!", "I need someone at my side at {place}.")),
    Situation("farewell",
              ("the player is about to leave {workplace}.", "the player turns to go {time}.",
               "the conversation is coming to an end."),
              ("Goodbye.", "Farewell, {name}.", "I must go now.", "See you later.", "Take care.",
               "The player waves goodbye.")),
)
SITUATION_BY_KEY: dict[str, Situation] = {s.key: s for s in SITUATIONS}


# --------------------------------------------------------------------------------------------------
# The action rule: (persona, situation, mood) -> action


def _greet(p: Persona, mood: str) -> str:
    if mood in ("angry", "suspicious"):
        return "warn" if p.kind == "guard" else "talk"
    return "greet"


def _idle(p: Persona, mood: str) -> str:
    if p.kind == "guard":
        return "patrol"
    return "greet" if mood == "cheerful" else "idle"


def _directions(p: Persona, mood: str) -> str:
    if mood == "angry":
        return "refuse"
    return "follow" if mood == "cheerful" and p.kind != "guard" else "talk"


def _trade(p: Persona, mood: str) -> str:
    if mood == "angry":
        return "refuse"
    if p.sells:
        return "trade"
    return "give" if p.role in ("priest", "healer") else "refuse"


def _threaten(p: Persona, mood: str) -> str:
    if p.kind == "guard":
        return "attack" if mood == "angry" else "warn"
    if mood == "afraid":
        return "call_guards" if p.kind == "trader" else "flee"
    if p.brave:
        return "attack" if mood == "angry" else "warn"
    if p.kind == "trader":
        return "call_guards"
    return "call_guards" if mood in ("angry", "suspicious") else "flee"


def _steal(p: Persona, mood: str) -> str:
    if p.kind == "guard":
        return "attack" if mood == "angry" else "warn"
    if p.kind == "rogue":
        return "warn"
    if p.brave and mood != "afraid":
        return "attack" if mood == "angry" else "warn"
    return "call_guards"


def _rumors(p: Persona, mood: str) -> str:
    if mood in ("angry", "suspicious"):
        return "refuse"
    return "trade" if p.kind == "rogue" else "talk"


def _bribe(p: Persona, mood: str) -> str:
    if p.kind == "rogue" or p.role == "merchant":
        return "trade"
    if p.kind == "guard" and mood in ("angry", "suspicious"):
        return "warn"
    return "refuse"


def _wounded(p: Persona, mood: str) -> str:
    if p.role in ("healer", "priest"):
        return "give"
    if mood == "afraid":
        return "call_guards"
    if p.kind == "guard":
        return "follow"
    if p.kind == "rogue" or mood in ("angry", "suspicious"):
        return "talk"
    return "give"


def _attack(p: Persona, mood: str) -> str:
    if p.kind == "guard":
        return "call_guards" if mood == "afraid" else "attack"
    if p.brave:
        return "flee" if mood == "afraid" else "attack"
    return "call_guards" if p.kind == "trader" else "flee"


def _quest(p: Persona, mood: str) -> str:
    return "refuse" if mood in ("angry", "suspicious") else "talk"


def _help(p: Persona, mood: str) -> str:
    if mood in ("afraid", "angry"):
        return "refuse"
    if p.kind == "guard" or p.brave or mood == "cheerful":
        return "follow"
    return "talk"


def _farewell(p: Persona, mood: str) -> str:
    if mood == "angry":
        return "idle"
    if mood == "suspicious":
        return "warn" if p.kind == "guard" else "idle"
    return "greet"


ACTION_RULES = {
    "greet": _greet, "idle": _idle, "directions": _directions, "trade": _trade, "threaten": _threaten,
    "steal": _steal, "rumors": _rumors, "bribe": _bribe, "wounded": _wounded, "attack": _attack,
    "quest": _quest, "help": _help, "farewell": _farewell,
}


def choose_action(role: str, situation: str, mood: str) -> str:
    """The action a persona of `role` takes in `situation` when in `mood` (the corpus' ground truth)."""
    return ACTION_RULES[situation](PERSONA_BY_ROLE[role], mood)


# --------------------------------------------------------------------------------------------------
# Reply phrasings


MOOD_OPENERS: dict[str, tuple[str, ...]] = {
    "calm": ("", "", "Well,", "Hm.", "Alright.", "I see."),
    "angry": ("What now?", "Bah!", "Curse it all.", "Not today.", "Ugh.", "Listen here,"),
    "afraid": ("P-please...", "Oh no, oh no.", "W-what?", "Gods help me.", "Stay back...", "Eek!"),
    "cheerful": ("Ha!", "Oh, wonderful!", "What a fine day!", "Hello hello!", "Splendid!", "Ah, lovely!"),
    "suspicious": ("Hmm.", "Who sent you?", "I don't trust you.", "Careful now.", "What's your game?",
                   "I've got my eye on you."),
    "sad": ("*sigh*", "Oh...", "Forgive me, I'm not myself today.", "It's been a hard week.", "Alas."),
    "tired": ("*yawn*", "Long day.", "So tired...", "Make it quick.", "Mm. Yes?"),
}

# Core lines for (situation, action). Slots: {addr} {item} {item2} {workplace} {place} {dir} {town}
# {price} {gold} {rumor} {monster} {name} {work} {other}.
CORES: dict[tuple[str, str], tuple[str, ...]] = {
    ("greet", "greet"): (
        "Welcome to {town}, {addr}.", "Good day to you, {addr}! I'm {name}.", "Hello, {addr}. Come in, come in.",
        "Greetings, {addr}. {work}", "Well met, {addr}. Not many visitors at {workplace} lately.",
        "Welcome, {addr}. Name's {name}.",
    ),
    ("greet", "talk"): (
        "What do you want, {addr}?", "Yes? Speak up, {addr}.", "I'm busy at {workplace}. Say what you need.",
        "You again? What is it?", "State your business, {addr}.", "{work} So what do you want?",
    ),
    ("greet", "warn"): (
        "Keep your hands where I can see them, {addr}.", "Step lightly, {addr}. I'm watching you.",
        "Stay away from {workplace}, {addr}.", "One wrong move and you'll regret it.",
        "I don't know you, {addr}, and I don't like that.",
    ),
    ("idle", "patrol"): (
        "Nothing to see here. I'll walk my round.", "Back to my rounds. {work}",
        "All quiet at {workplace}. I'll check the wall.", "I keep walking, {addr}. Stay out of trouble.",
        "Time to patrol {place}.",
    ),
    ("idle", "greet"): (
        "Oh, hello there, {addr}! Didn't see you!", "Hey, {addr}! Nice day, isn't it?",
        "Hello, {addr}! Come say hi!", "Don't be shy, {addr}! Welcome to {workplace}!",
    ),
    ("idle", "idle"): (
        "...", "Hm.", "I'll just keep working.", "{work}", "Don't mind me.", "Are you going to stand there all day?",
    ),
    ("directions", "talk"): (
        "{place}? Go {dir}.", "You'll find {place} if you head {dir}.",
        "Head {dir}, {addr}. You can't miss {place}.", "{place} is {dir}. Watch out for {monster}.",
        "Go {dir}. Ask for {other} when you get to {place}.",
    ),
    ("directions", "follow"): (
        "Oh, I know the way! Follow me to {place}!", "Come, {addr}, I'll walk you to {place}.",
        "{place}? It's {dir}. Come on, I'll show you!", "Follow me, {addr}! {place} is not far.",
    ),
    ("directions", "refuse"): (
        "Find it yourself.", "I'm not a map, {addr}.", "Ask someone else. I'm busy with {workplace}.",
        "Do I look like a guide to you?", "Go away. {place} can wait.",
    ),
    ("trade", "trade"): (
        "I have {item} for {price} gold, {addr}.", "Take a look: {item}, {item2}. Fair prices at {workplace}.",
        "For you, {item} at {price} gold.", "{item}? {price} gold, and not a copper less.",
        "I've got {item} and {item2}. What catches your eye?", "Best {item} in {town}. {price} gold.",
    ),
    ("trade", "give"): (
        "I don't sell, {addr}, but take {item}. It's free.", "Here, {item}, freely given.",
        "No coin needed. Take {item} with my blessing.", "I have nothing to sell, but {item} is yours.",
    ),
    ("trade", "refuse"): (
        "I've nothing to sell you, {addr}.", "No trading here. Try {place}.", "Not for sale. Move along.",
        "I don't sell to the likes of you.", "Keep your coins, {addr}. I'm not selling.",
    ),
    ("threaten", "warn"): (
        "Put that away, {addr}, or you'll regret it.", "Threaten me again and it's the last thing you do.",
        "Walk away now, {addr}. Last warning.", "Big words. Think hard before you act on them.",
        "Try it and see what happens, {addr}.",
    ),
    ("threaten", "attack"): (
        "You asked for it!", "That's it. Have at you!", "Nobody threatens me at {workplace}!",
        "Enough talk. You'll taste {item} now!", "Then let's settle this, {addr}!",
    ),
    ("threaten", "call_guards"): (
        "Guards! Guards! This one is threatening me!", "Help! Guards! Someone help!",
        "Guards! A thug at {workplace}!", "I'll scream for the watch! GUARDS!",
        "You won't get away with this. Guards!",
    ),
    ("threaten", "flee"): (
        "I want no trouble! I'm leaving!", "Please, don't hurt me! I'm going!", "Run! Run away!",
        "Take what you want, just let me go!", "I'm off to {place}, leave me be!",
    ),
    ("steal", "warn"): (
        "Put {item} back, {addr}. Now.", "I saw that. Return {item} or else.",
        "Thief! Drop {item} before I make you.", "Nice try, {addr}. I know that trick.",
        "Hands off {item}. Last warning.",
    ),
    ("steal", "attack"): (
        "Thief! You'll pay for that!", "Drop {item}, thief! Have at you!", "Stealing at {workplace}? Not while I live!",
        "Give back {item}, or I take it back by force!",
    ),
    ("steal", "call_guards"): (
        "Thief! Guards, stop that thief!", "Guards! They took {item}!", "Help! Thief at {workplace}!",
        "Stop! Thief! Somebody call the watch!", "My {item}! Guards, guards!",
    ),
    ("rumors", "talk"): (
        "They say {rumor}", "Word is {rumor}", "I heard {rumor} Don't repeat it.",
        "Well, {rumor} At least, that's what {other} says.", "Between you and me, {rumor}",
    ),
    ("rumors", "trade"): (
        "Information costs, {addr}. {price} gold and I'll tell you.", "I know things. {price} gold first.",
        "For {price} gold, I'll tell you about {place}.", "Secrets aren't free, {addr}. Pay up.",
    ),
    ("rumors", "refuse"): (
        "I don't gossip with strangers.", "Why do you want to know?", "Nothing to tell, {addr}.",
        "Mind your own business.", "I keep my mouth shut. You should too.",
    ),
    ("bribe", "trade"): (
        "Gold talks, {addr}. I saw nothing.", "{gold} gold? Make it {price} and we have a deal.",
        "Pleasure doing business. I never met you.", "Coin first, then I'm blind and deaf.",
    ),
    ("bribe", "refuse"): (
        "Keep your gold. I can't be bought.", "Put that away, {addr}. I'm honest.",
        "No. Not for {gold} gold, not for a hundred.", "Your coins mean nothing to me.",
        "I don't take bribes, {addr}.",
    ),
    ("bribe", "warn"): (
        "Bribing a guard? Put that away before I arrest you.", "Offer that again and you'll sleep in a cell.",
        "That's a crime in {town}, {addr}. Last warning.", "Keep your gold, and your distance.",
    ),
    ("wounded", "give"): (
        "Here, take {item}. It will help.", "Sit down, {addr}. Let me bind that wound.",
        "Drink this. You'll feel better soon.", "Take {item}, and rest at {workplace}.",
        "You're bleeding! Here, use {item}.",
    ),
    ("wounded", "follow"): (
        "Lean on me, {addr}. I'll take you to the healer.", "Come, the healer at {place} can help. Follow me.",
        "I'll get you to safety. Stay close.", "Easy now. I'll walk you to {place}.",
    ),
    ("wounded", "call_guards"): (
        "Help! Someone help! This one is hurt!", "Guards! A wounded traveler here!",
        "Somebody get the healer! Guards!", "Oh gods, so much blood! Help!",
    ),
    ("wounded", "talk"): (
        "Looks bad. The healer lives at {place}.", "Not my problem, {addr}. Try the chapel.",
        "You should see the healer. Go {dir}.", "Who did this to you? {monster}?",
    ),
    ("attack", "attack"): (
        "You'll regret that!", "To arms! Have at you!", "Big mistake, {addr}!", "I'll cut you down!",
        "Fight me, then!", "Nobody attacks me at {workplace}!",
    ),
    ("attack", "call_guards"): (
        "Guards! Guards! I'm being attacked!", "Help! Murder! Guards!", "Somebody call the watch!",
        "Guards, to {workplace}! Quickly!",
    ),
    ("attack", "flee"): (
        "Aaah! Run!", "Leave me alone! I'm going!", "Help! I'm running to {place}!",
        "Please, no! I'm out of here!", "I'm no fighter! Bye!",
    ),
    ("quest", "talk"): (
        "{monster} have been bothering {place}. Deal with them and I'll pay {price} gold.",
        "I need {item} brought from {place}. Can you do that?",
        "Find {other} at {place}. They need help.", "There's trouble at {place}. Go and see.",
        "Clear {monster} from {place}, {addr}, and you'll have my thanks.",
    ),
    ("quest", "refuse"): (
        "I have no work for you.", "Why would I trust you with anything?", "Not now, {addr}.",
        "I handle my own troubles.", "Ask someone else.",
    ),
    ("help", "follow"): (
        "Lead the way, {addr}. I'm right behind you.", "To {place}? Let's go.", "I'm with you, {addr}.",
        "{monster}? I'll bring {item}. Let's go.", "Alright, I'll come. Stay close.",
    ),
    ("help", "talk"): (
        "I can't leave {workplace}, but {other} might help you.", "I'm no fighter. Ask at {place}.",
        "Sorry, {addr}. {work}", "Take the road {dir}. Good luck.",
    ),
    ("help", "refuse"): (
        "No. I'm not going anywhere with you.", "Absolutely not.", "Find someone else, {addr}.",
        "Me? Fight {monster}? Never!", "I'm staying right here.",
    ),
    ("farewell", "greet"): (
        "Farewell, {addr}! Safe travels.", "Goodbye, {addr}. Come back soon.", "Take care on the road.",
        "Until next time, {addr}.", "Go well, {addr}.",
    ),
    ("farewell", "idle"): (
        "Finally.", "Hmph. Go, then.", "...", "Whatever.", "Good riddance.",
    ),
    ("farewell", "warn"): (
        "Leave, and don't come back to {workplace}.", "Go. And stay out of trouble in {town}.",
        "Off with you. I'll be watching.", "Don't let me catch you here again, {addr}.",
    ),
}


def _check_tables() -> None:
    """Every (situation, action) the rules can produce has phrasings; fails at import if not."""
    for persona in PERSONAS:
        for situation in SITUATIONS:
            for mood in MOODS:
                action = choose_action(persona.role, situation.key, mood)
                if action not in ACTIONS or (situation.key, action) not in CORES:
                    raise RuntimeError(f"no phrasing for {situation.key}/{action}")


_check_tables()


# --------------------------------------------------------------------------------------------------
# Held-out combinations and sample assembly


def _pick_heldout(seed: int = 2, count: int = 18) -> tuple[tuple[str, str], ...]:
    """Whole (role, situation) combinations never seen in training: at most two per role and per
    situation, so every role and situation keeps enough training data."""
    rng = random.Random(seed)
    pairs = [(p.role, s.key) for p in PERSONAS for s in SITUATIONS]
    rng.shuffle(pairs)
    per_role: dict[str, int] = {}
    per_situation: dict[str, int] = {}
    chosen: list[tuple[str, str]] = []
    for role, sit in pairs:
        if len(chosen) == count:
            break
        if per_role.get(role, 0) >= 2 or per_situation.get(sit, 0) >= 2:
            continue
        chosen.append((role, sit))
        per_role[role] = per_role.get(role, 0) + 1
        per_situation[sit] = per_situation.get(sit, 0) + 1
    return tuple(sorted(chosen))


HELDOUT_COMBOS: tuple[tuple[str, str], ...] = _pick_heldout()


@dataclass(frozen=True)
class Sample:
    role: str
    situation: str
    mood: str
    action: str
    system: str
    user: str
    reply: str                     # "[action] spoken line"

    @property
    def prompt(self) -> str:
        """Everything up to and including <|assistant|> (what the model is given)."""
        return f"{BOS}{SYSTEM}{self.system}{END}{USER}{self.user}{END}{ASSISTANT}"

    @property
    def completion(self) -> str:
        """What the model must write, end markers included."""
        return f"{self.reply}{END}{EOS}"

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def system_text(persona: str, situation: str, mood: str) -> str:
    """The system message: `persona` ("You are Bram, the village guard. Traits: stern, loyal.") plus the
    mood and the situation ("the player is near the gate at night.")."""
    persona = persona.strip()
    if persona and persona[-1] not in ".!?":
        persona += "."
    situation = situation.strip()
    if situation and situation[-1] not in ".!?":
        situation += "."
    return f"{persona} Mood: {mood.strip().rstrip('.')}. Situation: {situation}"


@dataclass
class _Slots:
    rng: random.Random
    persona: Persona
    name: str
    values: dict[str, str] = field(default_factory=dict)

    def fill(self, template: str) -> str:
        p, rng = self.persona, self.rng
        if not self.values:
            item, item2 = rng.sample(p.items, 2)
            others = [n for q in PERSONAS for n in q.names if n != self.name]
            self.values = {
                "addr": rng.choice(p.address), "item": item, "item2": item2,
                "workplace": rng.choice(p.workplace), "place": rng.choice(PLACES), "dir": rng.choice(DIRECTIONS),
                "town": rng.choice(TOWNS), "price": str(rng.choice((2, 3, 5, 8, 10, 12, 15, 20, 25, 40, 50))),
                "gold": str(rng.choice((5, 10, 20, 30, 50, 100))), "monster": rng.choice(MONSTERS),
                "name": self.name, "work": rng.choice(p.work), "other": rng.choice(others),
                "time": rng.choice(TIMES), "weapon": rng.choice(PLAYER_ITEMS),
            }
            self.values["rumor"] = rng.choice(RUMORS).format(**self.values)
        return template.format(**self.values)


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def make_sample(rng: random.Random, role: str, situation: str, mood: str) -> Sample:
    persona = PERSONA_BY_ROLE[role]
    sit = SITUATION_BY_KEY[situation]
    name = rng.choice(persona.names)
    slots = _Slots(rng, persona, name)
    traits = rng.sample(persona.traits, 2)
    persona_text = f"You are {name}, {rng.choice(persona.titles)}. Traits: {traits[0]}, {traits[1]}."
    # Scenes are told to the NPC in the second person: "my stall" -> "your stall".
    scene = slots.fill(rng.choice(sit.scenes)).replace("my ", "your ")
    system = system_text(persona_text, scene, mood)
    user = _capitalize(slots.fill(rng.choice(sit.user_lines)))
    action = choose_action(role, situation, mood)
    parts = [rng.choice(MOOD_OPENERS[mood]), slots.fill(rng.choice(CORES[(situation, action)]))]
    roll = rng.random()
    if roll < 0.35:
        parts.append(rng.choice(persona.tics))
    elif roll < 0.5 and action not in ("flee", "attack", "call_guards"):
        parts.append(slots.fill("{work}"))
    line = " ".join(_capitalize(part) for part in parts if part)
    return Sample(role, situation, mood, action, system, user, f"[{action}] {_capitalize(line)}")


@dataclass(frozen=True)
class Corpus:
    train: tuple[Sample, ...]
    heldout: tuple[Sample, ...]    # only HELDOUT_COMBOS: persona x situation never seen in training


def generate_corpus(*, seed: int = 0, num_train: int = 40000, num_heldout: int = 2000) -> Corpus:
    """Deterministic for a given seed: same seed, same samples in the same order."""
    rng = random.Random(seed)
    heldout_set = set(HELDOUT_COMBOS)
    train_combos = [(p.role, s.key) for p in PERSONAS for s in SITUATIONS if (p.role, s.key) not in heldout_set]
    train = []
    for _ in range(num_train):
        role, sit = rng.choice(train_combos)
        train.append(make_sample(rng, role, sit, rng.choice(MOODS)))
    # Its own random stream: the held-out set does not depend on how many training samples were drawn.
    rng = random.Random(f"{seed}:heldout")
    heldout = []
    for _ in range(num_heldout):
        role, sit = rng.choice(HELDOUT_COMBOS)
        heldout.append(make_sample(rng, role, sit, rng.choice(MOODS)))
    return Corpus(tuple(train), tuple(heldout))
