"""Per-nationality tables for the synthetic generator, modelled on randomuser API 1.4.

Lists are short on purpose: the generator needs realistic shapes and scripts, not variety.
Patterns: `#` is a digit, `@` an upper-case letter, `DDMMYY` the date of birth; anything else is literal.
`postcode` is "int5", "int4" (sent as JSON numbers, like the API) or a pattern (sent as a JSON string).
`id` is None where the real API answers `{"name": "", "value": null}` (IR, NZ, TR, UA).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Nat:
    country: str
    male: tuple[str, ...]
    female: tuple[str, ...]
    last: tuple[str, ...]
    cities: tuple[str, ...]
    states: tuple[str, ...]
    streets: tuple[str, ...]
    postcode: str
    phone: str
    cell: str
    id: tuple[str, str] | None


def _t(text: str) -> tuple[str, ...]:
    return tuple(text.split("|"))


NATS: dict[str, Nat] = {
    "AU": Nat("Australia", _t("Jack|Lewis|Harvey|Mason|Owen"), _t("Chloe|Ella|Mia|Zoe|Lily"),
              _t("Taylor|Walker|Hughes|Ward|Mitchell|Jenkins"), _t("Ballarat|Bunbury|Cairns|Geelong|Albany"),
              _t("Victoria|Queensland|Tasmania|Western Australia"), _t("Mockingbird Ln|Hamilton Ave|Fairview St"),
              "int4", "0#-####-####", "04##-###-###", ("TFN", "#########")),
    "BR": Nat("Brazil", _t("Rogério|Joaquim|Alberto|Gilberto|Anselmo"), _t("Adriana|Cláudia|Luíza|Tâmara|Iara"),
              _t("Pereira|da Mota|Nascimento|Gonçalves|Araújo|Souza"), _t("Campinas|Petrópolis|São José dos Campos|Maringá"),
              _t("Pernambuco|Santa Catarina|Paraná|Goiás"), _t("Rua São Jorge|Rua Belo Horizonte|Avenida Vinte e Um"),
              "int5", "(##) ####-####", "(##) #####-####", ("CPF", "###.###.###-##")),
    "CA": Nat("Canada", _t("Simon|Liam|Thomas|Hunter|Noah"), _t("Florence|Sophie|Chloé|Maya|Rosalie"),
              _t("Ouellet|Tremblay|Roy|Gagné|Wilson|Singh"), _t("Dorchester|Trois-Rivières|Kelowna|Moncton"),
              _t("Yukon|Ontario|Québec|Nova Scotia"), _t("St. Lawrence Ave|Dufferin St|Parliament St"),
              "@#@ #@#", "@##-###-####", "@##-###-####", ("SIN", "#########")),
    "CH": Nat("Switzerland", _t("Evan|Luca|Noah|Jonas|Elias"), _t("Ruth|Léa|Mia|Anna|Elena"),
              _t("Francois|Müller|Meyer|Roux|Fontaine|Schmid"), _t("Diepoldsau|Genève|Zürich|Lugano|Sion"),
              _t("St. Gallen|Vaud|Ticino|Bern"), _t("Rue Duquesne|Place de L'Europe|Rue Pasteur"),
              "int4", "07# ### ## ##", "07# ### ## ##", ("AVS", "756.####.####.##")),
    "DE": Nat("Germany", _t("Jürgen|Helmut|Dieter|Lukas|Jan"), _t("Annegret|Jutta|Ursula|Jördis|Karin"),
              _t("Schröder|Krüger|Weiß|Böhm|Hoffmann|Köhler"), _t("Düsseldorf|Görlitz|Würzburg|Lübeck"),
              _t("Nordrhein-Westfalen|Sachsen|Bayern|Schleswig-Holstein"), _t("Schulstraße|Mühlenweg|Lindenstraße"),
              "int5", "0###-#######", "017#-#######", ("SVNR", "## ###### @ ###")),
    "DK": Nat("Denmark", _t("Mikkel|Søren|Mads|Frederik|Oliver"), _t("Ida|Freja|Signe|Maja|Sofie"),
              _t("Jørgensen|Sørensen|Nielsen|Kristensen|Møller|Pedersen"), _t("Aarhus|Odense|Aalborg|Ølstykke"),
              _t("Syddanmark|Hovedstaden|Nordjylland|Midtjylland"), _t("Ågade|Bjørnevej|Kirkevej"),
              "int4", "########", "########", ("CPR", "DDMMYY-####")),
    "ES": Nat("Spain", _t("Álvaro|Jesús|Ramón|Marcos|Andrés"), _t("Nuria|Inés|Lucía|Pilar|Rocío"),
              _t("García|Martín|Núñez|Ibáñez|Muñoz|Gómez"), _t("Córdoba|Málaga|Santander|Alcalá de Henares"),
              _t("Andalucía|Cantabria|Galicia|Castilla la Mancha"), _t("Calle de Argumosa|Avenida de Castilla|Calle del Barquillo"),
              "int5", "9##-###-###", "6##-###-###", ("DNI", "########-@")),
    "FI": Nat("Finland", _t("Veeti|Eino|Aatu|Onni|Väinö"), _t("Aino|Siiri|Ella|Iida|Pihla"),
              _t("Valli|Tuomala|Mäkinen|Heikkinen|Lehtonen|Ahola"), _t("Malax|Pori|Jyväskylä|Hämeenlinna"),
              _t("North Karelia|Lapland|Uusimaa|Kainuu"), _t("Esplanadi|Hämeenkatu|Pispalan Valtatie"),
              "int5", "0#-###-###", "04#-###-##-##", ("HETU", "DDMMYY-###@")),
    "FR": Nat("France", _t("Mathéo|Gabriel|Théo|Loïc|Noé"), _t("Léna|Chloé|Maëlle|Inès|Zoé"),
              _t("Lefèvre|Girard|Mercier|Rousseau|Bonnet|Leroux"), _t("Besançon|Nîmes|Orléans|Saint-Étienne"),
              _t("Bas-Rhin|Hérault|Côte-D'Or|Loiret"), _t("Rue de l'Abbé-Grégoire|Place du 8 Février 1962|Rue Chazière"),
              "int5", "0#-##-##-##-##", "06-##-##-##-##", ("INSEE", "1########## ##")),
    "GB": Nat("United Kingdom", _t("Harry|Oliver|Ethan|Callum|Rhys"), _t("Amelia|Isabelle|Megan|Ellie|Sophie"),
              _t("Smith|Hughes|Clarke|Evans|Watson|Patel"), _t("Bath|Sheffield|Truro|Inverness"),
              _t("Berkshire|Cornwall|Highlands and Islands|South Yorkshire"), _t("Main Road|Church Street|Highfield Road"),
              "@@# #@@", "0##### ### ###", "07### ######", ("NINO", "@@ ## ## ## @")),
    "IE": Nat("Ireland", _t("Seán|Cian|Oisín|Darragh|Liam"), _t("Aoife|Siobhán|Niamh|Caoimhe|Róisín"),
              _t("Ó Briain|Murphy|Kelly|O'Sullivan|Walsh|Byrne"), _t("Galway|Kilkenny|Tralee|Athlone"),
              _t("Galway|Kilkenny|Kerry|Westmeath"), _t("Church Road|Main Street|Park Road"),
              "int5", "0#1-###-####", "08#-###-####", ("PPS", "#######@")),
    "IN": Nat("India", _t("Aarav|Vihaan|Sai|Ishaan|Rohan"), _t("Sushmitha|Aadhya|Diya|Ananya|Priya"),
              _t("Ramesh|Gupta|Iyer|Nair|Reddy|Kulkarni"), _t("Darbhanga|Pune|Mysuru|Kochi"),
              _t("Tripura|Karnataka|Kerala|Maharashtra"), _t("Shivajinagar|MG Road|Nehru Nagar"),
              "int5", "##########", "##########", ("UIDAI", "############")),
    "IR": Nat("Iran", _t("کیان|عرشیا|محمدمهدی|آرمین|امیرحسین"), _t("رها|یسنا|فاطمه زهرا|نازنین زهرا|مهسا"),
              _t("کامروا|زارعی|نجاتی|سلطانی نژاد|صدر|پارسا"), _t("قم|تهران|اصفهان|قزوین"),
              _t("کرمانشاه|چهارمحال و بختیاری|خراسان رضوی|فارس"), _t("مجاهدین اسلام|شهید بهشتی|آزادی"),
              "int5", "0##-########", "09##-###-####", None),
    "MX": Nat("Mexico", _t("Óscar|Jesús|Andrés|Ramón|Joaquín"), _t("Magdalena|Mónica|Ximena|Guadalupe|Itzel"),
              _t("Canales|Montañez|Rangel|Ybarra|Benavídez|Olivas"), _t("Puerta de Palmillas|Tlalnepantla|Mérida|Zacatecas"),
              _t("Tamaulipas|Yucatán|Michoacán|Zacatecas"), _t("Periférico Norte Beltrán|Calle Chiapas|Avenida Juárez"),
              "int5", "(6##) ### ####", "(6##) ### ####", ("NSS", "## ## ## #### #")),
    "NL": Nat("Netherlands", _t("Atilla|Stefanus|Daan|Sem|Jelle"), _t("Fenna|Sanne|Lotte|Iris|Noor"),
              _t("Bennink|Hilgersom|de Vries|van der Berg|Bakker|Visser"), _t("Aalsmeerderbrug|Vianen|Zwolle|Delft"),
              _t("Flevoland|Drenthe|Utrecht|Zeeland"), _t("Hoveniersdreef|Heerseweg|Kerkstraat"),
              "#### @@", "(0##) #######", "(06) ########", ("BSN", "########")),
    "NO": Nat("Norway", _t("Gunnar|Kenan|Håkon|Øyvind|Sverre"), _t("Ingrid|Åse|Sigrid|Tuva|Maren"),
              _t("Gramstad|Drabløs|Sæther|Løken|Haugen|Bjørnstad"), _t("Tromsø|Bærum|Ålesund|Drammen"),
              _t("Troms|Viken|Vestland|Nordland"), _t("Symreveien|Åsveien|Fjellveien"),
              "####", "########", "4#######", ("FN", "DDMMYY#####")),
    "NZ": Nat("New Zealand", _t("Tane|Mason|Lucas|Hunter|Riley"), _t("Aroha|Ruby|Charlotte|Isla|Mackenzie"),
              _t("Parker|Robinson|Ngata|Wilson|Taylor|King"), _t("Whanganui|Rotorua|Dunedin|Napier"),
              _t("Waikato|Otago|Hawke's Bay|Manawatu-Wanganui"), _t("Oxford Terrace|Queen Street|Victoria Street"),
              "int4", "(###)-###-####", "(###)-###-####", None),
    "RS": Nat("Serbia", _t("Đorđe|Miloš|Nikola|Stefan|Luka"), _t("Katalina|Milica|Jovana|Teodora|Anđela"),
              _t("Kitić|Jovanović|Petrović|Đorđević|Stanković|Ilić"), _t("Požarevac|Novi Sad|Niš|Čačak"),
              _t("Nišava|Braničevo|Šumadija|Zlatibor"), _t("Porodice Jovanović|Karađorđeva|Cara Dušana"),
              "int5", "0##-####-###", "06#-####-###", ("SID", "#########")),
    "TR": Nat("Turkey", _t("Eren|Kaan|Çağan|Oğuz|İlker"), _t("Şebnem|Gülsüm|Ayşe|Özlem|Çiğdem"),
              _t("Kılıççı|Öztürk|Yıldırım|Çelik|Şahin|Aydoğan"), _t("Nevşehir|Eskişehir|Muğla|Şanlıurfa"),
              _t("Bursa|Çanakkale|İzmir|Kırklareli"), _t("Bağdat Cd|Atatürk Sk|Istiklal Cd"),
              "int5", "(###)-###-####", "(###)-###-####", None),
    "UA": Nat("Ukraine", _t("Ярослав|Богдан|Остап|Тарас|Всеволод"), _t("Ярослава|Оксана|Соломія|Зоряна|Мирослава"),
              _t("Бабенко|Шевченко|Коваленко|Мельник|Ткачук|Гнатишин"), _t("Київ|Львів|Харків|Одеса"),
              _t("Вінницька|Львівська|Харківська|Одеська"), _t("Сумська|Хрещатик|Городоцька"),
              "int5", "(06#) ###-####", "(09#) ###-####", None),
    "US": Nat("United States", _t("Fernando|Perry|Wyatt|Clayton|Dwayne"), _t("Patricia|Jessica|Brittany|Kaylee|Dolores"),
              _t("Cooper|Hale|Hughes|Reyes|Gutierrez|Wheeler"), _t("Fort Wayne|Tucson|Boise|Fresno"),
              _t("Indiana|Arizona|Idaho|California"), _t("Washington Ave|Pecan Acres Ln|Lovers Ln"),
              "int5", "(###) ###-####", "(###) ###-####", ("SSN", "###-##-####")),
}

# Share of users per nationality: roughly even, like the API without `nat`.
NAT_CODES: tuple[str, ...] = tuple(NATS)

# The API uses example.com only; the generator spreads emails over 15 domains with a skewed
# (roughly Zipf) distribution so the "top email domains" aggregate has something to rank.
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("gmail.com", 300), ("yahoo.com", 120), ("hotmail.com", 100), ("outlook.com", 80), ("icloud.com", 60),
    ("example.com", 50), ("gmx.de", 45), ("orange.fr", 40), ("web.de", 35), ("yandex.ru", 35),
    ("mail.ru", 30), ("qq.com", 30), ("libero.it", 25), ("protonmail.com", 25), ("t-online.de", 25),
)

TIMEZONES: tuple[tuple[str, str], ...] = (
    ("-10:00", "Hawaii"), ("-9:00", "Alaska"), ("-8:00", "Pacific Time (US & Canada)"),
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"), ("-3:30", "Newfoundland"),
    ("-1:00", "Azores, Cape Verde Islands"), ("0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"), ("+3:30", "Tehran"),
    ("+5:00", "Ekaterinburg, Islamabad, Karachi, Tashkent"), ("+5:45", "Kathmandu"),
    ("+8:00", "Beijing, Perth, Singapore, Hong Kong"), ("+9:30", "Adelaide, Darwin"),
)

USERNAME_1 = _t("big|black|blue|brown|crazy|golden|happy|heavy|lazy|orange|purple|red|silver|small|tiny|yellow")
USERNAME_2 = _t("bear|bird|butterfly|cat|dog|duck|elephant|fish|frog|gorilla|koala|leopard|lion|meercat|ostrich|panda|peacock|rabbit|swan|tiger|zebra")
PASSWORDS = _t("lucas1|lekker|jerome|bob123|manowar|spidey|lkjh|ashley1|bitter|pathfind|talisman|serpent|chou|base|dragon|sunshine")
FEMALE_TITLES = ("Ms", "Mrs", "Miss")
FRENCH_TITLES = {"male": ("Monsieur",), "female": ("Madame", "Mademoiselle")}

# Enough to transliterate the Cyrillic and Persian names into email local parts, like the API does.
_CYRILLIC = zip("абвгґдеєжзиіїйклмнопрстуфхцчшщьюя", "a b v h g d e ie zh z y i i i k l m n o p r s t u f kh ts ch sh shch - iu ia".split(), strict=True)
_PERSIAN = zip("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیكيآ", "a b p t s j ch h kh d z r z zh s sh s z t z - gh f gh k g l m n v h y k y a".split(), strict=True)
# Latin letters that Unicode does not decompose into an ASCII base letter.
_LATIN = [("ø", "o"), ("æ", "ae"), ("å", "a"), ("ß", "ss"), ("đ", "d"), ("ı", "i"), ("ł", "l")]
TRANSLIT = str.maketrans({char: ("" if latin == "-" else latin) for char, latin in [*_CYRILLIC, *_PERSIAN, *_LATIN, ("\u200c", "-"), (" ", "-")]})
