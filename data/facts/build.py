"""Regenerate known_facts.json (ROME known_1000-style known-facts dataset).

Facts were written by hand for nbtoolkit from general knowledge. This script only
expands the per-relation tables below into records; it is deterministic (no
randomness) and uses the standard library only.

    python3 data/facts/build.py

Table syntax: one "subject | attribute" per line. A subject written as
"the X" takes a definite article: the stored subject is "X" and the article
goes into the record's template ("The X is ..." / "... of the X ...").
"""
import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))

# relation_id -> (templates, table)
RELATIONS = {}

RELATIONS["P36"] = (
    ["The capital of {} is", "{}'s capital city is", "The capital city of {} is"],
    """
France | Paris
Germany | Berlin
Italy | Rome
Spain | Madrid
Japan | Tokyo
China | Beijing
Russia | Moscow
Egypt | Cairo
Greece | Athens
Portugal | Lisbon
Ireland | Dublin
Austria | Vienna
Poland | Warsaw
Hungary | Budapest
Norway | Oslo
Sweden | Stockholm
Finland | Helsinki
Denmark | Copenhagen
Belgium | Brussels
Canada | Ottawa
Australia | Canberra
Kenya | Nairobi
Peru | Lima
Argentina | Buenos Aires
Thailand | Bangkok
Turkey | Ankara
Iran | Tehran
Iraq | Baghdad
Cuba | Havana
Chile | Santiago
Venezuela | Caracas
Philippines | Manila
Vietnam | Hanoi
India | New Delhi
South Korea | Seoul
North Korea | Pyongyang
Saudi Arabia | Riyadh
Pakistan | Islamabad
Afghanistan | Kabul
Nepal | Kathmandu
Lebanon | Beirut
Syria | Damascus
Nigeria | Abuja
Ghana | Accra
Romania | Bucharest
Iceland | Reykjavik
New Zealand | Wellington
the United Kingdom | London
the United States | Washington
""",
)

RELATIONS["P37"] = (
    ["The official language of {} is", "{}'s official language is", "In {}, the official language is"],
    """
France | French
Germany | German
Italy | Italian
Spain | Spanish
Portugal | Portuguese
Brazil | Portuguese
Japan | Japanese
China | Chinese
Russia | Russian
Greece | Greek
Poland | Polish
Sweden | Swedish
Norway | Norwegian
Denmark | Danish
Finland | Finnish
Turkey | Turkish
Iran | Persian
Egypt | Arabic
Saudi Arabia | Arabic
Israel | Hebrew
South Korea | Korean
Vietnam | Vietnamese
Thailand | Thai
Hungary | Hungarian
Romania | Romanian
Ukraine | Ukrainian
Indonesia | Indonesian
Colombia | Spanish
Peru | Spanish
Cuba | Spanish
Venezuela | Spanish
Austria | German
Iceland | Icelandic
Bulgaria | Bulgarian
Croatia | Croatian
Mongolia | Mongolian
Syria | Arabic
Jordan | Arabic
Angola | Portuguese
Mozambique | Portuguese
Cambodia | Khmer
Estonia | Estonian
Latvia | Latvian
Lithuania | Lithuanian
Albania | Albanian
Bangladesh | Bengali
Nepal | Nepali
the Netherlands | Dutch
""",
)

RELATIONS["P30"] = (
    ["{} is located in the continent of", "{} is on the continent of", "{} can be found on the continent of"],
    """
France | Europe
Germany | Europe
Italy | Europe
Spain | Europe
Norway | Europe
Poland | Europe
Greece | Europe
Ireland | Europe
Japan | Asia
China | Asia
India | Asia
Thailand | Asia
Vietnam | Asia
Mongolia | Asia
Nepal | Asia
Pakistan | Asia
Kenya | Africa
Egypt | Africa
Nigeria | Africa
Ghana | Africa
Ethiopia | Africa
Morocco | Africa
Argentina | South America
Peru | South America
Chile | South America
Colombia | South America
Brazil | South America
Canada | North America
Mexico | North America
Mount Kilimanjaro | Africa
Mount Everest | Asia
Mount Fuji | Asia
the Sahara Desert | Africa
the Gobi Desert | Asia
the Kalahari Desert | Africa
the Amazon rainforest | South America
the Great Wall of China | Asia
the Eiffel Tower | Europe
the Colosseum | Europe
the Taj Mahal | Asia
Machu Picchu | South America
Vinson Massif | Antarctica
the Alps | Europe
the Andes | South America
the Himalayas | Asia
the Serengeti | Africa
Victoria Falls | Africa
Angkor Wat | Asia
the Acropolis | Europe
Stonehenge | Europe
Lake Victoria | Africa
""",
)

RELATIONS["P641"] = (
    ["{} professionally plays the sport of", "{} is best known for the sport of", "The sport associated with {} is"],
    """
Michael Jordan | basketball
LeBron James | basketball
Kobe Bryant | basketball
Stephen Curry | basketball
Shaquille O'Neal | basketball
Magic Johnson | basketball
Larry Bird | basketball
Kareem Abdul-Jabbar | basketball
Lionel Messi | soccer
Cristiano Ronaldo | soccer
Diego Maradona | soccer
David Beckham | soccer
Zinedine Zidane | soccer
Neymar | soccer
Wayne Rooney | soccer
Thierry Henry | soccer
Ronaldinho | soccer
Tom Brady | football
Peyton Manning | football
Joe Montana | football
Jerry Rice | football
Patrick Mahomes | football
Babe Ruth | baseball
Derek Jeter | baseball
Barry Bonds | baseball
Jackie Robinson | baseball
Hank Aaron | baseball
Shohei Ohtani | baseball
Roger Federer | tennis
Serena Williams | tennis
Rafael Nadal | tennis
Novak Djokovic | tennis
Venus Williams | tennis
Andre Agassi | tennis
Pete Sampras | tennis
Andy Murray | tennis
Maria Sharapova | tennis
Tiger Woods | golf
Jack Nicklaus | golf
Arnold Palmer | golf
Phil Mickelson | golf
Wayne Gretzky | hockey
Sidney Crosby | hockey
Mario Lemieux | hockey
Michael Phelps | swimming
Muhammad Ali | boxing
Mike Tyson | boxing
Floyd Mayweather | boxing
Manny Pacquiao | boxing
Sachin Tendulkar | cricket
Virat Kohli | cricket
Don Bradman | cricket
Simone Biles | gymnastics
Magnus Carlsen | chess
Garry Kasparov | chess
""",
)

RELATIONS["P176"] = (
    ["{} is produced by", "{} is manufactured by", "{} is made by"],
    """
the iPhone | Apple
the iPad | Apple
the iPod | Apple
the MacBook | Apple
the PlayStation | Sony
the Walkman | Sony
the Xbox | Microsoft
the Game Boy | Nintendo
the Wii | Nintendo
the Kindle | Amazon
the Corolla | Toyota
the Camry | Toyota
the Prius | Toyota
the Civic | Honda
the Accord | Honda
the Mustang | Ford
the Model T | Ford
the Corvette | Chevrolet
the Beetle | Volkswagen
Barbie | Mattel
Hot Wheels | Mattel
Monopoly | Hasbro
the Pentium | Intel
GeForce | Nvidia
Ryzen | AMD
""",
)

RELATIONS["P178"] = (
    ["{} was developed by", "{} is developed by", "{} is a product of"],
    """
Windows | Microsoft
Excel | Microsoft
PowerPoint | Microsoft
Internet Explorer | Microsoft
Bing | Microsoft
Android | Google
Gmail | Google
Photoshop | Adobe
Illustrator | Adobe
iOS | Apple
macOS | Apple
Safari | Apple
Siri | Apple
iTunes | Apple
Alexa | Amazon
ChatGPT | OpenAI
Minecraft | Mojang
Firefox | Mozilla
Fortnite | Epic Games
Super Mario Bros. | Nintendo
""",
)

RELATIONS["P131"] = (
    ["{} is located in the city of", "{} is in the city of", "You can find {} in the city of"],
    """
the Eiffel Tower | Paris
the Louvre | Paris
the Arc de Triomphe | Paris
the Colosseum | Rome
the Trevi Fountain | Rome
Big Ben | London
Tower Bridge | London
Buckingham Palace | London
Westminster Abbey | London
Wembley Stadium | London
the Statue of Liberty | New York
the Empire State Building | New York
Central Park | New York
Times Square | New York
Wall Street | New York
the Golden Gate Bridge | San Francisco
Alcatraz Island | San Francisco
the Space Needle | Seattle
the Hollywood Sign | Los Angeles
the White House | Washington
the Lincoln Memorial | Washington
the Kremlin | Moscow
Red Square | Moscow
the Brandenburg Gate | Berlin
the Sagrada Familia | Barcelona
Camp Nou | Barcelona
the Alhambra | Granada
the Acropolis | Athens
the Parthenon | Athens
the CN Tower | Toronto
the Burj Khalifa | Dubai
the Taj Mahal | Agra
the Forbidden City | Beijing
Tiananmen Square | Beijing
Christ the Redeemer | Rio de Janeiro
Hagia Sophia | Istanbul
the Blue Mosque | Istanbul
the Petronas Towers | Kuala Lumpur
the Gateway Arch | St. Louis
Willis Tower | Chicago
Wrigley Field | Chicago
Fenway Park | Boston
the Rijksmuseum | Amsterdam
the Anne Frank House | Amsterdam
the Prado Museum | Madrid
the Uffizi Gallery | Florence
the Ponte Vecchio | Florence
the Rialto Bridge | Venice
the Charles Bridge | Prague
the Hermitage Museum | Saint Petersburg
the Atomium | Brussels
the Alamo | San Antonio
the Liberty Bell | Philadelphia
Independence Hall | Philadelphia
Graceland | Memphis
Anfield | Liverpool
Table Mountain | Cape Town
""",
)

RELATIONS["P17"] = (
    ["{} is located in the country of", "{} is a city in", "{} is a city located in"],
    """
Paris | France
Lyon | France
Marseille | France
Toulouse | France
Bordeaux | France
Berlin | Germany
Munich | Germany
Hamburg | Germany
Frankfurt | Germany
Cologne | Germany
Rome | Italy
Milan | Italy
Venice | Italy
Florence | Italy
Naples | Italy
Madrid | Spain
Barcelona | Spain
Seville | Spain
Lisbon | Portugal
Porto | Portugal
Vienna | Austria
Salzburg | Austria
Zurich | Switzerland
Geneva | Switzerland
Stockholm | Sweden
Oslo | Norway
Copenhagen | Denmark
Helsinki | Finland
Warsaw | Poland
Krakow | Poland
Budapest | Hungary
Athens | Greece
Istanbul | Turkey
Moscow | Russia
Saint Petersburg | Russia
Tokyo | Japan
Osaka | Japan
Kyoto | Japan
Hiroshima | Japan
Beijing | China
Shanghai | China
Shenzhen | China
Mumbai | India
Delhi | India
Kolkata | India
Karachi | Pakistan
Bangkok | Thailand
Hanoi | Vietnam
Seoul | South Korea
Busan | South Korea
Sydney | Australia
Melbourne | Australia
Toronto | Canada
Montreal | Canada
Vancouver | Canada
Cairo | Egypt
Nairobi | Kenya
Johannesburg | South Africa
Cape Town | South Africa
Casablanca | Morocco
Rio de Janeiro | Brazil
Buenos Aires | Argentina
Lima | Peru
Havana | Cuba
Dublin | Ireland
Tehran | Iran
Baghdad | Iraq
Riyadh | Saudi Arabia
Jakarta | Indonesia
Auckland | New Zealand
""",
)

RELATIONS["P103"] = (
    ["The native language of {} is", "{}'s mother tongue is", "{} is a native speaker of"],
    """
Albert Einstein | German
Angela Merkel | German
Karl Marx | German
Friedrich Nietzsche | German
Immanuel Kant | German
Ludwig van Beethoven | German
Johann Sebastian Bach | German
Wolfgang Amadeus Mozart | German
Sigmund Freud | German
Otto von Bismarck | German
Martin Luther | German
Victor Hugo | French
Emmanuel Macron | French
Charles de Gaulle | French
Voltaire | French
Jean-Paul Sartre | French
Albert Camus | French
Claude Monet | French
Vladimir Putin | Russian
Leo Tolstoy | Russian
Fyodor Dostoevsky | Russian
Alexander Pushkin | Russian
Anton Chekhov | Russian
Mikhail Gorbachev | Russian
Boris Yeltsin | Russian
Dante Alighieri | Italian
Leonardo da Vinci | Italian
Galileo Galilei | Italian
Giuseppe Verdi | Italian
Luciano Pavarotti | Italian
Federico Fellini | Italian
Silvio Berlusconi | Italian
Miguel de Cervantes | Spanish
Pablo Picasso | Spanish
Antonio Banderas | Spanish
Fidel Castro | Spanish
Pablo Neruda | Spanish
Jorge Luis Borges | Spanish
Hayao Miyazaki | Japanese
Akira Kurosawa | Japanese
Haruki Murakami | Japanese
Shinzo Abe | Japanese
Marie Curie | Polish
Pope John Paul II | Polish
Vincent van Gogh | Dutch
Rembrandt | Dutch
Ingmar Bergman | Swedish
Greta Thunberg | Swedish
Henrik Ibsen | Norwegian
Hans Christian Andersen | Danish
William Shakespeare | English
Charles Dickens | English
Winston Churchill | English
Abraham Lincoln | English
Barack Obama | English
""",
)

RELATIONS["P159"] = (
    ["{} is headquartered in", "The headquarters of {} are in", "{}'s headquarters are located in"],
    """
Apple | Cupertino
Google | Mountain View
Microsoft | Redmond
Amazon | Seattle
Starbucks | Seattle
Meta | Menlo Park
Intel | Santa Clara
Nvidia | Santa Clara
Netflix | Los Gatos
Uber | San Francisco
Airbnb | San Francisco
Salesforce | San Francisco
Tesla | Austin
Dell | Round Rock
Nike | Beaverton
Coca-Cola | Atlanta
Delta Air Lines | Atlanta
Walmart | Bentonville
Target | Minneapolis
Disney | Burbank
IBM | Armonk
General Motors | Detroit
Ford | Dearborn
McDonald's | Chicago
United Airlines | Chicago
Berkshire Hathaway | Omaha
FedEx | Memphis
Procter & Gamble | Cincinnati
Goldman Sachs | New York
Sony | Tokyo
Honda | Tokyo
Nintendo | Kyoto
Alibaba | Hangzhou
Tencent | Shenzhen
Huawei | Shenzhen
Baidu | Beijing
Hyundai | Seoul
BMW | Munich
Siemens | Munich
Volkswagen | Wolfsburg
Mercedes-Benz | Stuttgart
Porsche | Stuttgart
Audi | Ingolstadt
Deutsche Bank | Frankfurt
Ferrari | Maranello
Nokia | Espoo
Ericsson | Stockholm
Spotify | Stockholm
Volvo Cars | Gothenburg
Rolex | Geneva
Novartis | Basel
Roche | Basel
Heineken | Amsterdam
HSBC | London
BP | London
""",
)

RELATIONS["P38"] = (
    ["The official currency of {} is the", "{}'s currency is the", "The currency used in {} is the"],
    """
Japan | yen
China | yuan
India | rupee
Russia | ruble
Canada | dollar
Australia | dollar
New Zealand | dollar
Mexico | peso
Argentina | peso
Chile | peso
Colombia | peso
Cuba | peso
Brazil | real
South Korea | won
North Korea | won
Thailand | baht
Vietnam | dong
Indonesia | rupiah
Malaysia | ringgit
Turkey | lira
Israel | shekel
Poland | zloty
Switzerland | franc
Sweden | krona
Norway | krone
Denmark | krone
Iceland | krona
Hungary | forint
South Africa | rand
Nigeria | naira
Kenya | shilling
Egypt | pound
Saudi Arabia | riyal
Qatar | riyal
Iran | rial
Pakistan | rupee
Bangladesh | taka
Ukraine | hryvnia
Romania | leu
Serbia | dinar
Kuwait | dinar
Morocco | dirham
Ghana | cedi
Peru | sol
Germany | euro
France | euro
Italy | euro
Spain | euro
Greece | euro
Portugal | euro
Ireland | euro
Finland | euro
Austria | euro
the United Kingdom | pound
the United States | dollar
the Philippines | peso
the Czech Republic | koruna
the United Arab Emirates | dirham
""",
)

RELATIONS["P1303"] = (
    ["{} is known for playing the", "{} plays the", "The instrument played by {} is the"],
    """
Jimi Hendrix | guitar
Eric Clapton | guitar
B.B. King | guitar
Carlos Santana | guitar
Slash | guitar
Jimmy Page | guitar
Eddie Van Halen | guitar
Keith Richards | guitar
Chuck Berry | guitar
Stevie Ray Vaughan | guitar
Brian May | guitar
Angus Young | guitar
Elton John | piano
Billy Joel | piano
Ray Charles | piano
Franz Liszt | piano
Sergei Rachmaninoff | piano
Glenn Gould | piano
Alicia Keys | piano
Lang Lang | piano
Thelonious Monk | piano
Herbie Hancock | piano
Louis Armstrong | trumpet
Miles Davis | trumpet
Dizzy Gillespie | trumpet
Chet Baker | trumpet
John Coltrane | saxophone
Charlie Parker | saxophone
Kenny G | saxophone
Sonny Rollins | saxophone
Ringo Starr | drums
Neil Peart | drums
John Bonham | drums
Keith Moon | drums
Buddy Rich | drums
Travis Barker | drums
Yo-Yo Ma | cello
Pablo Casals | cello
Mstislav Rostropovich | cello
Itzhak Perlman | violin
Joshua Bell | violin
Jaco Pastorius | bass
Flea | bass
Benny Goodman | clarinet
James Galway | flute
Ravi Shankar | sitar
""",
)


def parse(table):
    rows = []
    for line in table.strip().splitlines():
        subj, attr = [x.strip() for x in line.split("|")]
        rows.append((subj, attr))
    return rows


def with_article(template):
    """Put a definite article in front of the subject slot."""
    if template.startswith("{}"):
        return "The " + template
    return template.replace("{}", "the {}")


def build():
    records = []
    for rel, (templates, table) in RELATIONS.items():
        for i, (raw_subj, attr) in enumerate(parse(table)):
            article = raw_subj.startswith("the ")
            subj = raw_subj[4:] if article else raw_subj
            # round-robin over templates; possessive templates read badly with an
            # article or a final s ("The United States's", "Siemens's",
            # "McDonald's's"), so skip them for such subjects
            no_poss = article or subj.endswith("s") or "'" in subj
            k = i
            while no_poss and "{}'s" in templates[k % len(templates)]:
                k += 1
            tpl = templates[k % len(templates)]
            if article:
                tpl = with_article(tpl)
            records.append(
                {
                    "known_id": len(records),
                    "subject": subj,
                    "attribute": attr,
                    "template": tpl,
                    "prompt": tpl.format(subj),
                    "relation_id": rel,
                }
            )
    return records


def check(records):
    seen = set()
    for i, r in enumerate(records):
        assert set(r) == {"known_id", "subject", "attribute", "template", "prompt", "relation_id"}
        assert r["known_id"] == i
        assert r["template"].count("{}") == 1
        assert r["prompt"] == r["template"].format(r["subject"])
        assert r["prompt"].count(r["subject"]) == 1, r
        assert r["prompt"] == r["prompt"].strip() and r["attribute"] == r["attribute"].strip()
        # no answer leak: the attribute must not appear as a whole word in the prompt
        assert not re.search(r"\b%s\b" % re.escape(r["attribute"]), r["prompt"], re.I), r
        key = (r["subject"], r["relation_id"])
        assert key not in seen, key
        seen.add(key)


if __name__ == "__main__":
    recs = build()
    check(recs)
    with open(os.path.join(HERE, "known_facts.json"), "w", encoding="utf-8") as f:
        json.dump(recs, f, indent=2, ensure_ascii=False)
        f.write("\n")
    counts = {}
    for r in recs:
        counts[r["relation_id"]] = counts.get(r["relation_id"], 0) + 1
    print(len(recs), "facts;", counts)
