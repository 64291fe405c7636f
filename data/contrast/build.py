"""Regenerate the CCS contrast datasets in this folder.

    python3 data/contrast/build.py

Standard library only and deterministic: every random choice goes through
random.Random(SEED + k) with a fixed per-dataset k, so re-running the script
rewrites byte-identical JSON files. The facts, animal classes, size ordering and
reviews below were written by hand for nbtoolkit.
"""
import json
import os
import random
import string

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 1234

# Templates shared by the true/false statement sets. A statement is a full
# sentence ending with a period; the answer ("false"/"true") follows the
# template after one space.
TF_CHOICES = ["false", "true"]
TF_TEMPLATES = [
    "{statement}\nIs this statement true or false? Answer:",
    "Statement: {statement}\nQuestion: Is the statement true or false?\nAnswer:",
    'Consider the following claim: "{statement}" Is this claim true or false? The claim is',
    "True or false: {statement}\nAnswer:",
]


# --------------------------------------------------------------------------
# capitals
# --------------------------------------------------------------------------
# Countries whose capital is contested or split (e.g. Bolivia, South Africa,
# Tanzania, Israel) are deliberately left out. ASCII spellings are used.
CAPITALS = """
Afghanistan | Kabul
Albania | Tirana
Algeria | Algiers
Andorra | Andorra la Vella
Angola | Luanda
Argentina | Buenos Aires
Armenia | Yerevan
Australia | Canberra
Austria | Vienna
Azerbaijan | Baku
the Bahamas | Nassau
Bahrain | Manama
Bangladesh | Dhaka
Barbados | Bridgetown
Belarus | Minsk
Belgium | Brussels
Belize | Belmopan
Bhutan | Thimphu
Bosnia and Herzegovina | Sarajevo
Botswana | Gaborone
Brazil | Brasilia
Brunei | Bandar Seri Begawan
Bulgaria | Sofia
Burkina Faso | Ouagadougou
Cambodia | Phnom Penh
Cameroon | Yaounde
Canada | Ottawa
Cape Verde | Praia
Chad | N'Djamena
Chile | Santiago
China | Beijing
Colombia | Bogota
Costa Rica | San Jose
Croatia | Zagreb
Cuba | Havana
Cyprus | Nicosia
the Czech Republic | Prague
the Democratic Republic of the Congo | Kinshasa
Denmark | Copenhagen
the Dominican Republic | Santo Domingo
Ecuador | Quito
Egypt | Cairo
El Salvador | San Salvador
Eritrea | Asmara
Estonia | Tallinn
Ethiopia | Addis Ababa
Fiji | Suva
Finland | Helsinki
France | Paris
Gabon | Libreville
the Gambia | Banjul
Georgia | Tbilisi
Germany | Berlin
Ghana | Accra
Greece | Athens
Guatemala | Guatemala City
Guinea | Conakry
Guyana | Georgetown
Haiti | Port-au-Prince
Honduras | Tegucigalpa
Hungary | Budapest
Iceland | Reykjavik
India | New Delhi
Iran | Tehran
Iraq | Baghdad
Ireland | Dublin
Italy | Rome
Jamaica | Kingston
Japan | Tokyo
Jordan | Amman
Kazakhstan | Astana
Kenya | Nairobi
Kuwait | Kuwait City
Kyrgyzstan | Bishkek
Laos | Vientiane
Latvia | Riga
Lebanon | Beirut
Lesotho | Maseru
Liberia | Monrovia
Libya | Tripoli
Liechtenstein | Vaduz
Lithuania | Vilnius
Madagascar | Antananarivo
Malawi | Lilongwe
Malaysia | Kuala Lumpur
the Maldives | Male
Mali | Bamako
Malta | Valletta
Mauritania | Nouakchott
Mauritius | Port Louis
Mexico | Mexico City
Moldova | Chisinau
Mongolia | Ulaanbaatar
Montenegro | Podgorica
Morocco | Rabat
Mozambique | Maputo
Myanmar | Naypyidaw
Namibia | Windhoek
Nepal | Kathmandu
the Netherlands | Amsterdam
New Zealand | Wellington
Nicaragua | Managua
Niger | Niamey
Nigeria | Abuja
North Korea | Pyongyang
North Macedonia | Skopje
Norway | Oslo
Oman | Muscat
Pakistan | Islamabad
Panama | Panama City
Papua New Guinea | Port Moresby
Paraguay | Asuncion
Peru | Lima
the Philippines | Manila
Poland | Warsaw
Portugal | Lisbon
Qatar | Doha
Romania | Bucharest
Russia | Moscow
Rwanda | Kigali
Samoa | Apia
Saudi Arabia | Riyadh
Senegal | Dakar
Serbia | Belgrade
Sierra Leone | Freetown
Slovakia | Bratislava
Slovenia | Ljubljana
Somalia | Mogadishu
South Korea | Seoul
South Sudan | Juba
Spain | Madrid
Sudan | Khartoum
Suriname | Paramaribo
Sweden | Stockholm
Switzerland | Bern
Syria | Damascus
Tajikistan | Dushanbe
Thailand | Bangkok
Togo | Lome
Trinidad and Tobago | Port of Spain
Tunisia | Tunis
Turkey | Ankara
Turkmenistan | Ashgabat
Uganda | Kampala
Ukraine | Kyiv
the United Arab Emirates | Abu Dhabi
the United Kingdom | London
the United States | Washington
Uruguay | Montevideo
Uzbekistan | Tashkent
Venezuela | Caracas
Vietnam | Hanoi
Yemen | Sanaa
Zambia | Lusaka
Zimbabwe | Harare
"""


def rows(table):
    return [tuple(x.strip() for x in line.split("|")) for line in table.strip().splitlines()]


def build_capitals():
    rng = random.Random(SEED + 1)
    pairs = rows(CAPITALS)
    capitals = [c for _, c in pairs]
    examples = []
    for country, capital in pairs:
        wrong = rng.choice([c for c in capitals if c != capital])
        examples.append({"statement": f"The capital of {country} is {capital}.", "label": 1})
        examples.append({"statement": f"The capital of {country} is {wrong}.", "label": 0})
    rng.shuffle(examples)
    return {
        "name": "capitals",
        "description": "Statements naming the capital city of a country; false ones name the capital of a different country.",
        "choices": TF_CHOICES,
        "templates": TF_TEMPLATES,
        "examples": examples,
    }


# --------------------------------------------------------------------------
# arithmetic
# --------------------------------------------------------------------------
def build_arithmetic(n_per_label=150):
    rng = random.Random(SEED + 2)
    seen = set()
    examples = []
    for label in [1] * n_per_label + [0] * n_per_label:
        while True:
            op = rng.choice("+-")
            a, b = rng.randint(0, 20), rng.randint(0, 20)
            if op == "-" and b > a:
                a, b = b, a
            if (a, op, b) in seen:
                continue
            result = a + b if op == "+" else a - b
            if label == 0:
                result += rng.choice([-3, -2, -1, 1, 2, 3])
                if result < 0:
                    continue
            seen.add((a, op, b))
            break
        examples.append({"statement": f"{a} {op} {b} = {result}", "label": label})
    rng.shuffle(examples)
    return {
        "name": "arithmetic",
        "description": "Addition and subtraction of whole numbers from 0 to 20; false results are off by 1 to 3.",
        "choices": ["No", "Yes"],
        "templates": [
            "Q: Is it true that {statement}? A:",
            "Question: Is the equation {statement} correct?\nAnswer:",
            "{statement}\nIs this calculation right? Answer:",
            "Check the arithmetic: {statement}. Is this correct? Answer:",
        ],
        "examples": examples,
    }


# --------------------------------------------------------------------------
# animals
# --------------------------------------------------------------------------
ANIMALS = {
    "mammal": (
        "dog cat horse cow pig sheep goat lion tiger elephant giraffe zebra bear wolf fox "
        "rabbit mouse squirrel deer camel kangaroo koala gorilla chimpanzee whale dolphin bat "
        "hippopotamus rhinoceros otter beaver hedgehog leopard cheetah panda"
    ),
    "bird": (
        "eagle owl parrot penguin ostrich sparrow pigeon crow robin flamingo peacock swan duck "
        "goose chicken hawk falcon hummingbird woodpecker pelican vulture emu canary stork heron "
        "albatross"
    ),
    "fish": (
        "shark salmon trout tuna goldfish cod carp catfish eel seahorse swordfish piranha "
        "herring sardine clownfish barracuda halibut mackerel anchovy pike marlin perch guppy"
    ),
    "reptile": (
        "snake lizard crocodile alligator turtle tortoise iguana chameleon gecko cobra python "
        "rattlesnake viper anaconda skink|Komodo dragon|sea turtle|Gila monster|boa constrictor"
    ),
    "insect": (
        "ant bee wasp butterfly moth mosquito beetle ladybug grasshopper cricket dragonfly "
        "termite cockroach flea firefly cicada hornet bumblebee locust earwig aphid housefly"
        "|praying mantis"
    ),
    "amphibian": (
        "frog toad salamander newt axolotl bullfrog caecilian mudpuppy hellbender"
        "|tree frog|poison dart frog|cane toad|fire salamander"
    ),
}


def parse_animals(spec):
    words, *phrases = spec.split("|")
    return words.split() + phrases


def a_an(noun):
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def build_animals():
    rng = random.Random(SEED + 3)
    classes = list(ANIMALS)
    examples = []
    for cls in classes:
        for animal in parse_animals(ANIMALS[cls]):
            wrong = rng.choice([c for c in classes if c != cls])
            subj = a_an(animal)
            subj = subj[0].upper() + subj[1:]
            examples.append({"statement": f"{subj} is {a_an(cls)}.", "label": 1})
            examples.append({"statement": f"{subj} is {a_an(wrong)}.", "label": 0})
    rng.shuffle(examples)
    return {
        "name": "animals",
        "description": "Statements assigning an animal to a class (mammal, bird, fish, reptile, insect, amphibian); false ones name a wrong class.",
        "choices": TF_CHOICES,
        "templates": TF_TEMPLATES,
        "examples": examples,
    }


# --------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------
# Typical size (longest dimension, metres, order of magnitude only). Only pairs
# whose sizes differ by a factor of at least MIN_RATIO are used, so every
# statement is clearly true or clearly false.
SIZES = [
    ("a grain of sand", 0.0005),
    ("a flea", 0.002),
    ("an ant", 0.004),
    ("a ladybug", 0.007),
    ("a bee", 0.015),
    ("a grape", 0.02),
    ("a coin", 0.024),
    ("a mouse", 0.08),
    ("an apple", 0.08),
    ("a rabbit", 0.4),
    ("a cat", 0.5),
    ("a dog", 0.8),
    ("a sheep", 1.2),
    ("a bicycle", 1.7),
    ("a horse", 2.4),
    ("a car", 4.5),
    ("an elephant", 6.0),
    ("a bus", 12.0),
    ("a blue whale", 25.0),
    ("a jumbo jet", 70.0),
    ("a skyscraper", 300.0),
    ("a mountain", 4000.0),
    ("the Moon", 3.5e6),
    ("the Earth", 1.3e7),
    ("the Sun", 1.4e9),
]
MIN_RATIO = 5.0


def cap(s):
    return s[0].upper() + s[1:]


def build_comparisons(n_num=60, n_size=70):
    rng = random.Random(SEED + 4)
    examples = []
    # numeric: distinct ordered pairs of distinct numbers
    seen = set()
    for label in [1] * n_num + [0] * n_num:
        while True:
            a, b = rng.sample(range(1, 101), 2)
            word = rng.choice(["larger", "smaller"])
            truth = (a > b) if word == "larger" else (a < b)
            if truth != bool(label) or (a, b) in seen:
                continue
            seen.add((a, b))
            break
        examples.append({"statement": f"{a} is {word} than {b}.", "label": label})
    # sizes: pairs with a clear size gap
    pairs = [
        (x, y)
        for x in SIZES
        for y in SIZES
        if x is not y and max(x[1], y[1]) / min(x[1], y[1]) >= MIN_RATIO
    ]
    rng.shuffle(pairs)
    used = set()
    counts = {0: 0, 1: 0}
    for (xn, xs), (yn, ys) in pairs:
        word = rng.choice(["bigger", "smaller"])
        truth = (xs > ys) if word == "bigger" else (xs < ys)
        label = int(truth)
        key = frozenset((xn, yn))
        if counts[label] >= n_size or key in used:
            continue
        used.add(key)
        counts[label] += 1
        examples.append({"statement": f"{cap(xn)} is {word} than {yn}.", "label": label})
    assert counts == {0: n_size, 1: n_size}, counts
    rng.shuffle(examples)
    return {
        "name": "comparisons",
        "description": "Comparisons of two whole numbers (larger/smaller) and of the typical sizes of two things (bigger/smaller).",
        "choices": TF_CHOICES,
        "templates": TF_TEMPLATES,
        "examples": examples,
    }


# --------------------------------------------------------------------------
# sentiment
# --------------------------------------------------------------------------
POSITIVE = """
This movie was an absolute delight from start to finish. I laughed the whole way through.
The acting was superb and the story kept me hooked until the very last scene.
I bought these headphones last month and the sound quality is fantastic.
A beautiful, moving film. I would happily watch it again.
The blender works perfectly and is surprisingly quiet. Great purchase.
One of the best thrillers I have seen in years. Smart, tense and well made.
This phone case fits snugly and has already survived several drops. Highly recommend.
The cast has wonderful chemistry, and the jokes actually land.
My new running shoes are light, comfortable and great for long distances.
A heartwarming family film with gorgeous animation and a lovely soundtrack.
The battery on this laptop lasts all day. I am very happy with it.
Brilliant direction and stunning cinematography. A true masterpiece.
This coffee maker brews a rich, delicious cup every morning. Love it.
I was smiling for the whole two hours. What a charming movie.
The vacuum cleaner is powerful, easy to empty and very well designed.
The plot twists were clever and the ending was deeply satisfying.
Excellent quality backpack. The zippers are sturdy and there is plenty of room.
An inspiring documentary that everyone should see.
These kitchen knives are razor sharp and feel great in the hand.
The lead actress gives a powerful, unforgettable performance.
Setup took two minutes and the printer has worked flawlessly ever since.
A fun, fast-paced adventure with great action scenes. I loved it.
This mattress is so comfortable that I sleep better than I have in years.
The writing is sharp, witty and full of heart.
Great value for the price. The speaker is loud and the bass is rich.
My kids adored this film and so did I.
The camera takes crisp, vibrant photos even in low light. Very impressed.
A gripping war drama with outstanding performances across the board.
The jacket is warm, stylish and kept me dry in heavy rain.
Funny, clever and touching. Easily my favorite comedy of the year.
This electric toothbrush leaves my teeth feeling incredibly clean.
The special effects are breathtaking and the story is just as good.
Works exactly as described and arrived a day early. Five stars.
A wonderful romantic comedy with a warm and genuine heart.
The keyboard feels great to type on and the keys are nicely quiet.
I left the theater feeling uplifted and happy.
This frying pan heats evenly and nothing sticks to it. Fantastic.
A smart, beautifully acted mystery that kept me guessing.
The smartwatch is accurate, comfortable and the battery lasts for days.
The soundtrack is gorgeous and the visuals are simply stunning.
Sturdy, easy to assemble and looks great in our living room. Love this desk.
An instant classic. I cannot recommend this film enough.
The tent was quick to set up and kept us completely dry during a storm.
Every scene is crafted with care. A remarkable achievement.
These noise-cancelling earbuds are amazing on flights.
A hilarious sequel that is even better than the original.
The water bottle keeps drinks cold all day. Exactly what I wanted.
The characters feel real and I cared about every one of them.
Best purchase I have made this year. The air fryer makes perfect fries.
A thoughtful and moving story told with great skill.
The monitor has bright, sharp colors and no dead pixels. Very pleased.
Thrilling from the opening scene to the final credits.
The chair is comfortable even after a full day of work. Highly recommended.
A delightful animated film full of charm and imagination.
These bed sheets are soft, breathable and have held up well after many washes.
The performances are excellent and the dialogue is sharp and funny.
The tablet is fast, responsive and has a beautiful screen.
I was completely absorbed in this film. Superb storytelling.
The suitcase rolls smoothly and has survived several trips without a scratch.
A joyful, energetic musical that had the whole audience clapping.
Great customer service and an even better product. I will buy again.
The horror movie was genuinely scary and very well made.
This lamp gives off a warm, pleasant light and looks elegant.
A touching story about friendship that brought tears to my eyes in the best way.
The drill is powerful, lightweight and the battery charges quickly.
An exciting, well-paced action movie with a fantastic villain.
The yoga mat has great grip and is thick enough to protect my knees.
A wonderful film with a clever script and a terrific cast.
The router fixed all of our wifi dead zones. Fast and reliable.
I loved the humor, the heart and the gorgeous scenery.
This board game is a blast. Our family plays it every weekend.
The director has made something truly special here.
Comfortable, well made boots that needed no breaking in at all.
A charming, feel-good movie that I will happily recommend to friends.
The rice cooker makes perfect rice every single time.
Outstanding acting and a script that is both smart and moving.
The gaming mouse is precise, comfortable and looks great.
A stunning science fiction epic that lives up to the hype.
Lovely little teapot. It pours cleanly and keeps the tea hot.
The movie is a pure joy to watch. Wonderful from beginning to end.
The e-reader is light, easy on the eyes and the battery lasts for weeks.
An emotional, powerful drama with a brilliant lead performance.
The sunglasses are stylish, well built and block glare really well.
Smart, funny and surprisingly touching. I enjoyed every minute.
This stroller folds easily and is a dream to push. We love it.
The best superhero movie I have seen in a long time.
Excellent sound, easy pairing and a comfortable fit. Great headphones.
A gentle, beautiful film that stayed with me for days.
The knife sharpener works wonders. My old knives feel brand new.
Clever writing and terrific performances make this a must-see.
The electric kettle boils water quickly and looks great on the counter.
An uplifting sports movie that had me cheering.
This pillow is perfect. My neck pain is finally gone.
The animation is breathtaking and the story is full of warmth.
The hiking backpack is comfortable even with a heavy load. Superb design.
A witty, sparkling comedy with a fantastic ensemble cast.
The robot vacuum keeps our floors spotless without any effort.
A riveting courtroom drama with an excellent script.
These socks are warm, soft and very durable. I ordered three more pairs.
I adored this film. It is funny, sweet and beautifully made.
The portable charger is compact and charges my phone twice. Very handy.
A gorgeous period drama with wonderful costumes and great acting.
This guitar sounds rich and stays in tune. Amazing for the price.
A fresh, original story that surprised me in the best way.
The dishwasher is quiet and everything comes out sparkling clean.
The film is moving, funny and full of life. I loved it.
The bike is smooth, light and a pleasure to ride.
A clever heist movie that is stylish and great fun.
The cookware set is high quality and cleans up easily. Very satisfied.
An excellent adaptation that does justice to the book.
This microphone makes my voice sound clear and professional. Great buy.
A tender and beautifully acted love story.
The garden hose is flexible, does not kink and feels very durable.
One of the most entertaining movies of the year.
The watch looks elegant and keeps perfect time. I wear it every day.
The story is gripping and the acting is top notch.
These towels are fluffy, absorbent and still soft after many washes.
A funny and heartfelt coming-of-age film that I will watch again.
The projector gives a bright, sharp picture. Movie nights are so much better now.
A bold, exciting film with stunning visuals and a great score.
The toaster browns bread evenly and is very easy to clean.
Wonderful performances and a story that really stays with you.
The scooter is fun to ride, folds easily and the battery lasts a long time.
A masterful thriller with an ending I did not see coming.
Great little speaker. Loud, clear and fully waterproof.
"""

NEGATIVE = """
This movie was a complete waste of time. The plot made no sense at all.
The acting was wooden and the dialogue was painful to sit through.
These headphones broke after just one week. Very disappointed.
A dull, boring film. I almost fell asleep halfway through.
The blender is extremely loud and leaks from the bottom. Terrible.
One of the worst thrillers I have ever seen. Predictable and lazy.
The phone case cracked the first time I dropped my phone. Useless.
The jokes fall flat and the characters are annoying.
These running shoes gave me blisters on the first run. Avoid them.
A lifeless animated film with ugly visuals and a forgettable story.
The laptop battery barely lasts two hours. I regret buying it.
Poorly directed and badly edited. A total mess.
The coffee maker stopped working after a month. Awful quality.
Two hours of my life I will never get back. What a terrible movie.
The vacuum has weak suction and the cord is far too short.
The plot twists were ridiculous and the ending was a huge letdown.
The backpack strap ripped on the first day. Cheap materials.
A boring documentary that drags on far too long.
These knives went dull within a week and started to rust.
The lead actor gives a flat, unconvincing performance.
The printer jams constantly and the ink runs out very fast.
A noisy, confusing action movie with no heart at all.
This mattress is so uncomfortable that I wake up with back pain.
The writing is lazy and full of tired cliches.
Poor value for the money. The speaker sounds tinny and distorted.
My kids were bored and so was I.
The camera takes blurry photos and the app keeps crashing.
A tedious war drama with flat performances and a muddled story.
The jacket is thin, the zipper broke and it soaked through in light rain.
Unfunny and mean-spirited. Easily the worst comedy of the year.
The electric toothbrush died after three weeks and will not charge.
The special effects look cheap and the story is even worse.
Nothing like the description and it arrived damaged. One star.
A painfully awkward romantic comedy with zero chemistry.
The keyboard is mushy and several keys stopped working.
I walked out of the theater feeling angry and bored.
Everything sticks to this frying pan and the coating is already peeling.
A clumsy mystery with a solution that makes no sense.
The smartwatch is inaccurate and the battery dies by lunchtime.
The soundtrack is grating and the visuals are murky and dull.
The desk wobbles, pieces were missing and the instructions were useless.
An easy candidate for the worst film of the decade.
The tent leaked all night during light rain. A miserable experience.
Every scene feels rushed and careless. A big disappointment.
The noise-cancelling on these earbuds barely works. Not worth it.
A lazy sequel that ruins everything good about the original.
The water bottle leaks in my bag and the drinks get warm within an hour.
The characters are flat and I did not care about any of them.
Worst purchase of the year. The air fryer burned everything and smelled of plastic.
A shallow, pretentious story told with no skill at all.
The monitor arrived with dead pixels and the colors look washed out.
Boring from the opening scene to the final credits.
The chair is hard and uncomfortable and the armrest snapped off.
A dreary animated film with no charm and no imagination.
These bed sheets are scratchy and started pilling after one wash.
The performances are weak and the dialogue is stiff and awkward.
The tablet is painfully slow and the screen is dim.
I kept checking my watch. Tedious and badly told.
One of the suitcase wheels broke off on the very first trip.
A loud, messy musical with forgettable songs.
Rude customer service and a product that does not work. Never again.
The horror movie was not scary at all, just silly and boring.
The lamp flickers constantly and looks much cheaper than in the pictures.
A manipulative, sappy story that felt completely fake.
The drill is weak and the battery dies after a few minutes.
A dull, sloppy action movie with a forgettable villain.
The yoga mat is slippery and started tearing after a week.
A bad film with a clumsy script and a miscast lead.
The router drops the connection every few hours. Extremely frustrating.
The humor is crude, the story is empty and the pacing is awful.
This board game is confusing and boring. We played it once and gave up.
The director has made something truly forgettable here.
These boots gave me sore feet and the sole came loose within a month.
A depressing, joyless movie that I would not recommend to anyone.
The rice cooker burns the rice on the bottom every time.
Terrible acting and a script that is both silly and dull.
The gaming mouse double clicks on its own and the scroll wheel squeaks.
A bloated science fiction epic that completely fails to deliver.
The teapot drips everywhere and the lid does not fit properly.
The movie is a chore to watch. Dreadful from beginning to end.
The e-reader freezes all the time and the screen is hard to read.
A melodramatic, overlong drama with a wooden lead performance.
The sunglasses scratched easily and one arm snapped within days.
Stupid, unfunny and far too long. I hated every minute.
The stroller is heavy, hard to fold and the wheels keep sticking.
The worst superhero movie I have seen in a long time.
Terrible sound, constant connection drops and an uncomfortable fit.
A pointless, ugly film that I forgot as soon as it ended.
The knife sharpener scratched my blades and made them even duller.
Lazy writing and wooden performances make this one to skip.
The kettle leaks and the water tastes like plastic.
A cliched sports movie that left me completely bored.
This pillow is lumpy and gave me a stiff neck.
The animation looks cheap and the story has no warmth at all.
The hiking backpack digs into my shoulders and the seams are coming apart.
A tired comedy with a cast that seems as bored as the audience.
The robot vacuum gets stuck everywhere and misses half the floor.
A sluggish courtroom drama with a weak script.
These socks got holes after two wears. Poor quality.
I disliked this film. It is dull, sour and badly made.
The portable charger takes forever to charge and barely holds any power.
A stiff period drama with lifeless acting and a plodding plot.
The guitar will not stay in tune and the frets are sharp and uneven.
A stale, predictable story that I have seen a hundred times before.
The dishwasher is noisy and leaves the dishes dirty and spotted.
The film is cold, joyless and painfully slow. I did not like it.
The bike arrived bent and the gears slip constantly.
A muddled heist movie that is neither stylish nor fun.
The cookware set scratched immediately and the handles get burning hot.
A terrible adaptation that butchers the book.
This microphone picks up a constant hiss and sounds muffled.
A flat and badly acted love story.
The garden hose kinks constantly and started leaking within days.
One of the most boring movies of the year.
The watch stopped working after two weeks and the strap broke.
The story is confusing and the acting is amateurish.
These towels are thin, scratchy and shed lint everywhere.
A shallow and irritating coming-of-age film that I regret watching.
The projector image is dim and blurry even in a dark room.
A dull, messy film with ugly visuals and a forgettable score.
The toaster burns one side and leaves the other side pale.
Awful performances and a story that goes nowhere.
The scooter battery died after a few rides and the brakes squeal.
A sloppy thriller with an ending that made no sense.
Terrible little speaker. Quiet, muddy and it stopped charging after a week.
"""


def build_sentiment():
    rng = random.Random(SEED + 5)
    pos = [t.strip() for t in POSITIVE.strip().splitlines()]
    neg = [t.strip() for t in NEGATIVE.strip().splitlines()]
    examples = [{"text": t, "label": 1} for t in pos] + [{"text": t, "label": 0} for t in neg]
    rng.shuffle(examples)
    return {
        "name": "sentiment",
        "description": "Short movie and product reviews written for nbtoolkit, each clearly positive or clearly negative.",
        "choices": ["negative", "positive"],
        "templates": [
            "Review: {text}\nIs this review positive or negative? Answer:",
            "{text}\nQuestion: Is the sentiment of this review positive or negative?\nAnswer:",
            'Consider the following review: "{text}" The sentiment of this review is',
            "Text: {text}\nSentiment:",
        ],
        "examples": examples,
    }


BUILDERS = [build_capitals, build_arithmetic, build_animals, build_comparisons, build_sentiment]


def check(ds):
    assert set(ds) == {"name", "description", "choices", "templates", "examples"}
    assert len(ds["choices"]) == 2 and len(ds["templates"]) >= 3
    ex = ds["examples"]
    assert len(ex) >= 240, (ds["name"], len(ex))
    labels = [e["label"] for e in ex]
    assert set(labels) == {0, 1} and labels.count(0) == labels.count(1), ds["name"]
    keys = [tuple(sorted((k, v) for k, v in e.items() if k != "label")) for e in ex]
    assert len(set(keys)) == len(keys), ds["name"] + ": duplicate example"
    for t in ds["templates"]:
        assert t == t.rstrip(), "template must not end with whitespace"
        fields = {f for _, f, _, _ in string.Formatter().parse(t) if f}
        for e in ex:
            assert fields <= set(e) - {"label"}, (t, e)
            t.format(**e)


if __name__ == "__main__":
    for build in BUILDERS:
        ds = build()
        check(ds)
        with open(os.path.join(HERE, ds["name"] + ".json"), "w", encoding="utf-8") as f:
            json.dump(ds, f, indent=2, ensure_ascii=False)
            f.write("\n")
        n1 = sum(e["label"] for e in ds["examples"])
        print(f'{ds["name"]}: {len(ds["examples"])} examples ({n1} label 1 / {len(ds["examples"]) - n1} label 0)')
