"""A small made-up picture of the world: merchants, payment intermediaries, P2P apps and cities.

Shared by the sample-data generator (which writes descriptions naming these merchants) and the emulator
(which recognises them), so it lives outside both: runtime code never imports the emulator.
Written for this project (no data is copied from Ntropy). Aliases are matched as whole words in the
upper-cased description, so ``SQ *BLUE BOTTLE`` finds Square and Blue Bottle Coffee.

Contact and registry fields are synthetic on purpose: phone numbers are in the ``555-01xx`` range reserved
for fiction and tax numbers start with ``00-``, a prefix the US IRS never assigns. The NAICS 2017 codes
are the public industry codes of each category (``NAICS_2017_BY_CATEGORY``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

OPEX = "operational expenses"
COGS = "cost of goods sold"


@dataclass(frozen=True, slots=True)
class Merchant:
    """A well-known organization that appears in transaction descriptions.

    :param name: the display name.
    :param website: its domain (the logo URL is derived from it).
    :param mccs: its merchant category codes.
    :param category: the general category of a purchase from it.
    :param accounting: the accounting category of a business's outgoing payment to it.
    :param aliases: upper-case words that name it in a description.
    """

    name: str
    website: str
    mccs: tuple[int, ...]
    category: str
    accounting: str
    aliases: tuple[str, ...]

    @property
    def phone_number(self) -> str:
        """A synthetic phone number (fiction range ``+1 800-555-01xx``), stable for the merchant."""
        return synthetic_phone_number(self.name)

    @property
    def tax_number(self) -> str:
        """A synthetic US employer identification number (``00-`` prefix: never assigned)."""
        return synthetic_tax_number(self.name)

    @property
    def naics2017(self) -> str | None:
        """The NAICS 2017 code of the merchant's industry, from its category."""
        return NAICS_2017_BY_CATEGORY.get(self.category)


def _digest(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def synthetic_phone_number(name: str) -> str:
    """A phone number in the range reserved for fiction, derived from ``name``.

    :param name: the organization's name.
    """
    return f"+1 800-555-01{_digest(name) % 100:02d}"


def synthetic_tax_number(name: str) -> str:
    """A US EIN-shaped number with the never-assigned ``00`` prefix, derived from ``name``.

    :param name: the organization's name.
    """
    return f"00-{_digest(name) % 10_000_000:07d}"


def _m(
    name: str, website: str, mccs: tuple[int, ...], category: str, accounting: str, *aliases: str
) -> Merchant:
    return Merchant(name, website, mccs, category, accounting, aliases or (name.upper(),))


#: NAICS 2017 code of payment processors (financial transactions processing).
PAYMENT_PROCESSING_NAICS_2017 = "522320"
#: Public NAICS 2017 industry codes of the catalogue's general categories.
NAICS_2017_BY_CATEGORY: dict[str, str] = {
    "coffee shops": "722515",
    "fast food": "722513",
    "restaurants": "722511",
    "food delivery": "492210",
    "groceries": "445110",
    "department stores": "452210",
    "home improvement": "444110",
    "furniture": "442110",
    "electronics": "443142",
    "clothing": "448140",
    "beauty": "446120",
    "online shopping": "454110",
    "office supplies": "453210",
    "pharmacy": "446110",
    "gas stations": "447110",
    "rideshare": "485310",
    "car rental": "532111",
    "car dealers": "441110",
    "public transport": "485111",
    "airlines": "481111",
    "hotels": "721110",
    "travel agencies": "561510",
    "streaming services": "515210",
    "software": "511210",
    "advertising": "541810",
    "shipping": "492110",
    "rent": "531120",
    "phone bills": "517312",
    "internet": "517311",
    "utilities": "221122",
    "gyms and fitness": "713940",
    "entertainment": "711310",
    "video games": "511210",
    "insurance": "524126",
    "taxes": "921130",
}

MERCHANTS: tuple[Merchant, ...] = (
    # Coffee, restaurants, fast food
    _m("Starbucks", "starbucks.com", (5814,), "coffee shops", OPEX, "STARBUCKS", "SBUX"),
    _m("Dunkin'", "dunkindonuts.com", (5814,), "coffee shops", OPEX, "DUNKIN", "DUNKIN DONUTS"),
    _m("Blue Bottle Coffee", "bluebottlecoffee.com", (5814,), "coffee shops", OPEX, "BLUE BOTTLE"),
    _m("Peet's Coffee", "peets.com", (5814,), "coffee shops", OPEX, "PEETS", "PEET S COFFEE"),
    _m("Tim Hortons", "timhortons.com", (5814,), "coffee shops", OPEX, "TIM HORTONS"),
    _m("Costa Coffee", "costa.co.uk", (5814,), "coffee shops", OPEX, "COSTA COFFEE"),
    _m("McDonald's", "mcdonalds.com", (5814,), "fast food", OPEX, "MCDONALDS", "MCDONALD S"),
    _m("Burger King", "bk.com", (5814,), "fast food", OPEX, "BURGER KING"),
    _m("Wendy's", "wendys.com", (5814,), "fast food", OPEX, "WENDYS", "WENDY S"),
    _m("Taco Bell", "tacobell.com", (5814,), "fast food", OPEX, "TACO BELL"),
    _m("Chipotle", "chipotle.com", (5814,), "restaurants", OPEX, "CHIPOTLE"),
    _m("Subway", "subway.com", (5814,), "fast food", OPEX, "SUBWAY"),
    _m("KFC", "kfc.com", (5814,), "fast food", OPEX, "KFC"),
    _m("Domino's", "dominos.com", (5814,), "fast food", OPEX, "DOMINOS", "DOMINO S"),
    _m("Pizza Hut", "pizzahut.com", (5814,), "fast food", OPEX, "PIZZA HUT"),
    _m("Chick-fil-A", "chick-fil-a.com", (5814,), "fast food", OPEX, "CHICK FIL A", "CHICKFILA"),
    _m("Panera Bread", "panerabread.com", (5814,), "restaurants", OPEX, "PANERA"),
    _m("Shake Shack", "shakeshack.com", (5814,), "restaurants", OPEX, "SHAKE SHACK"),
    _m("Five Guys", "fiveguys.com", (5814,), "fast food", OPEX, "FIVE GUYS"),
    _m("Pret A Manger", "pret.com", (5814,), "restaurants", OPEX, "PRET A MANGER", "PRET"),
    _m("Olive Garden", "olivegarden.com", (5812,), "restaurants", OPEX, "OLIVE GARDEN"),
    _m("Cheesecake Factory", "thecheesecakefactory.com", (5812,), "restaurants", OPEX, "CHEESECAKE FACTORY"),
    # Food delivery
    _m("DoorDash", "doordash.com", (5814,), "food delivery", OPEX, "DOORDASH", "DD DOORDASH"),
    _m("Uber Eats", "ubereats.com", (5814,), "food delivery", OPEX, "UBER EATS", "UBEREATS"),
    _m("Grubhub", "grubhub.com", (5814,), "food delivery", OPEX, "GRUBHUB"),
    _m("Deliveroo", "deliveroo.co.uk", (5814,), "food delivery", OPEX, "DELIVEROO"),
    _m("Instacart", "instacart.com", (5411,), "groceries", COGS, "INSTACART"),
    # Groceries and big-box retail
    _m("Walmart", "walmart.com", (5411, 5311), "groceries", COGS, "WALMART", "WAL MART", "WM SUPERCENTER"),
    _m("Target", "target.com", (5311,), "department stores", COGS, "TARGET"),
    _m("Costco", "costco.com", (5300,), "groceries", COGS, "COSTCO"),
    _m("Kroger", "kroger.com", (5411,), "groceries", COGS, "KROGER"),
    _m("Whole Foods Market", "wholefoodsmarket.com", (5411,), "groceries", COGS, "WHOLE FOODS", "WHOLEFDS"),
    _m("Trader Joe's", "traderjoes.com", (5411,), "groceries", COGS, "TRADER JOE S", "TRADER JOES"),
    _m("Safeway", "safeway.com", (5411,), "groceries", COGS, "SAFEWAY"),
    _m("Publix", "publix.com", (5411,), "groceries", COGS, "PUBLIX"),
    _m("Aldi", "aldi.us", (5411,), "groceries", COGS, "ALDI"),
    _m("Lidl", "lidl.com", (5411,), "groceries", COGS, "LIDL"),
    _m("Tesco", "tesco.com", (5411,), "groceries", COGS, "TESCO"),
    _m("Sainsbury's", "sainsburys.co.uk", (5411,), "groceries", COGS, "SAINSBURYS", "SAINSBURY S"),
    _m("Carrefour", "carrefour.com", (5411,), "groceries", COGS, "CARREFOUR"),
    _m("Albertsons", "albertsons.com", (5411,), "groceries", COGS, "ALBERTSONS"),
    _m("Sam's Club", "samsclub.com", (5300,), "groceries", COGS, "SAMS CLUB", "SAM S CLUB"),
    _m("Home Depot", "homedepot.com", (5200,), "home improvement", COGS, "HOME DEPOT", "THE HOME DEPOT"),
    _m("Lowe's", "lowes.com", (5200,), "home improvement", COGS, "LOWES", "LOWE S"),
    _m("IKEA", "ikea.com", (5712,), "furniture", OPEX, "IKEA"),
    _m("Best Buy", "bestbuy.com", (5732,), "electronics", OPEX, "BEST BUY", "BESTBUY"),
    _m("Macy's", "macys.com", (5311,), "department stores", COGS, "MACYS", "MACY S"),
    _m("Nordstrom", "nordstrom.com", (5311,), "clothing", COGS, "NORDSTROM"),
    _m("Nike", "nike.com", (5661,), "clothing", COGS, "NIKE"),
    _m("Zara", "zara.com", (5651,), "clothing", COGS, "ZARA"),
    _m("H&M", "hm.com", (5651,), "clothing", COGS, "H M", "H AND M", "HM COM"),
    _m("Gap", "gap.com", (5651,), "clothing", COGS, "GAP"),
    _m("Uniqlo", "uniqlo.com", (5651,), "clothing", COGS, "UNIQLO"),
    _m("Sephora", "sephora.com", (5977,), "beauty", COGS, "SEPHORA"),
    _m("Etsy", "etsy.com", (5999,), "online shopping", COGS, "ETSY"),
    _m("eBay", "ebay.com", (5999,), "online shopping", COGS, "EBAY"),
    _m(
        "Amazon",
        "amazon.com",
        (5942, 5999),
        "online shopping",
        COGS,
        "AMAZON",
        "AMZN",
        "AMZN MKTP",
        "AMAZON COM",
    ),
    _m("Alibaba", "alibaba.com", (5999,), "online shopping", COGS, "ALIBABA", "ALIEXPRESS"),
    _m("Wayfair", "wayfair.com", (5712,), "furniture", OPEX, "WAYFAIR"),
    _m("Staples", "staples.com", (5943,), "office supplies", OPEX, "STAPLES"),
    _m("Office Depot", "officedepot.com", (5943,), "office supplies", OPEX, "OFFICE DEPOT"),
    # Pharmacy and health
    _m("CVS Pharmacy", "cvs.com", (5912,), "pharmacy", OPEX, "CVS", "CVS PHARMACY"),
    _m("Walgreens", "walgreens.com", (5912,), "pharmacy", OPEX, "WALGREENS"),
    _m("Rite Aid", "riteaid.com", (5912,), "pharmacy", OPEX, "RITE AID"),
    _m("Boots", "boots.com", (5912,), "pharmacy", OPEX, "BOOTS"),
    # Fuel and transport
    _m("Shell", "shell.com", (5541, 5542), "gas stations", OPEX, "SHELL", "SHELL OIL"),
    _m("Chevron", "chevron.com", (5541, 5542), "gas stations", OPEX, "CHEVRON"),
    _m("ExxonMobil", "exxonmobil.com", (5541, 5542), "gas stations", OPEX, "EXXON", "EXXONMOBIL", "MOBIL"),
    _m("BP", "bp.com", (5541, 5542), "gas stations", OPEX, "BP"),
    _m("Uber", "uber.com", (4121,), "rideshare", OPEX, "UBER", "UBER TRIP"),
    _m("Lyft", "lyft.com", (4121,), "rideshare", OPEX, "LYFT"),
    _m("Hertz", "hertz.com", (3357, 7512), "car rental", OPEX, "HERTZ"),
    _m("Avis", "avis.com", (3389, 7512), "car rental", OPEX, "AVIS"),
    _m("Enterprise Rent-A-Car", "enterprise.com", (3405, 7512), "car rental", OPEX, "ENTERPRISE RENT"),
    _m("Tesla", "tesla.com", (5511,), "car dealers", OPEX, "TESLA"),
    _m("Amtrak", "amtrak.com", (4112,), "public transport", OPEX, "AMTRAK"),
    _m("Transport for London", "tfl.gov.uk", (4111,), "public transport", OPEX, "TFL", "TFL TRAVEL"),
    # Travel
    _m("Delta Air Lines", "delta.com", (3058, 4511), "airlines", OPEX, "DELTA AIR", "DELTA AIRLINES"),
    _m("United Airlines", "united.com", (3000, 4511), "airlines", OPEX, "UNITED AIRLINES", "UNITED AIR"),
    _m("American Airlines", "aa.com", (3001, 4511), "airlines", OPEX, "AMERICAN AIRLINES", "AMERICAN AIR"),
    _m("Southwest Airlines", "southwest.com", (3066, 4511), "airlines", OPEX, "SOUTHWEST", "SOUTHWES"),
    _m(
        "British Airways",
        "britishairways.com",
        (3005, 4511),
        "airlines",
        OPEX,
        "BRITISH AIRWAYS",
        "BRITISH A",
    ),
    _m("Ryanair", "ryanair.com", (3246, 4511), "airlines", OPEX, "RYANAIR"),
    _m("Airbnb", "airbnb.com", (7011,), "hotels", OPEX, "AIRBNB"),
    _m("Marriott", "marriott.com", (3509, 7011), "hotels", OPEX, "MARRIOTT"),
    _m("Hilton", "hilton.com", (3504, 7011), "hotels", OPEX, "HILTON"),
    _m("Hyatt", "hyatt.com", (3640, 7011), "hotels", OPEX, "HYATT"),
    _m("Booking.com", "booking.com", (4722,), "travel agencies", OPEX, "BOOKING COM", "BOOKING"),
    _m("Expedia", "expedia.com", (4722,), "travel agencies", OPEX, "EXPEDIA"),
    # Software, cloud and subscriptions
    _m("Netflix", "netflix.com", (4899,), "streaming services", OPEX, "NETFLIX"),
    _m("Spotify", "spotify.com", (5815,), "streaming services", OPEX, "SPOTIFY"),
    _m("Hulu", "hulu.com", (4899,), "streaming services", OPEX, "HULU"),
    _m("Disney+", "disneyplus.com", (4899,), "streaming services", OPEX, "DISNEY PLUS", "DISNEYPLUS"),
    _m("YouTube", "youtube.com", (4899,), "streaming services", OPEX, "YOUTUBE", "YOUTUBE PREMIUM"),
    _m("Apple", "apple.com", (5732, 5818), "electronics", OPEX, "APPLE", "APPLE COM BILL", "ITUNES"),
    _m("Google", "google.com", (5818, 7372), "software", OPEX, "GOOGLE", "GOOGLE CLOUD", "GSUITE"),
    _m("Microsoft", "microsoft.com", (5734, 7372), "software", OPEX, "MICROSOFT", "MSFT", "AZURE"),
    _m("Amazon Web Services", "aws.amazon.com", (7372,), "software", COGS, "AWS", "AMAZON WEB SERVICES"),
    _m("Adobe", "adobe.com", (5734, 7372), "software", OPEX, "ADOBE"),
    _m("Salesforce", "salesforce.com", (7372,), "software", OPEX, "SALESFORCE"),
    _m("Slack", "slack.com", (7372,), "software", OPEX, "SLACK"),
    _m("Zoom", "zoom.us", (7372,), "software", OPEX, "ZOOM", "ZOOM US"),
    _m("Dropbox", "dropbox.com", (7372,), "software", OPEX, "DROPBOX"),
    _m("GitHub", "github.com", (7372,), "software", OPEX, "GITHUB"),
    _m("Atlassian", "atlassian.com", (7372,), "software", OPEX, "ATLASSIAN", "JIRA"),
    _m("Notion", "notion.so", (7372,), "software", OPEX, "NOTION"),
    _m("OpenAI", "openai.com", (7372,), "software", OPEX, "OPENAI", "CHATGPT"),
    _m("DigitalOcean", "digitalocean.com", (7372,), "software", COGS, "DIGITALOCEAN"),
    _m("Heroku", "heroku.com", (7372,), "software", COGS, "HEROKU"),
    _m("Twilio", "twilio.com", (4814, 7372), "software", COGS, "TWILIO"),
    _m("Mailchimp", "mailchimp.com", (7311,), "advertising", OPEX, "MAILCHIMP"),
    _m("HubSpot", "hubspot.com", (7372,), "software", OPEX, "HUBSPOT"),
    _m("Intuit", "intuit.com", (7372,), "software", OPEX, "INTUIT", "QUICKBOOKS"),
    _m("Shopify", "shopify.com", (7372,), "software", OPEX, "SHOPIFY"),
    _m("Meta", "meta.com", (7311,), "advertising", OPEX, "FACEBK", "FACEBOOK", "META ADS"),
    _m("LinkedIn", "linkedin.com", (7311,), "advertising", OPEX, "LINKEDIN"),
    _m("FedEx", "fedex.com", (4215,), "shipping", COGS, "FEDEX"),
    _m("UPS", "ups.com", (4215,), "shipping", COGS, "UPS"),
    _m("USPS", "usps.com", (9402,), "shipping", COGS, "USPS"),
    _m("DHL", "dhl.com", (4215,), "shipping", COGS, "DHL"),
    _m("WeWork", "wework.com", (6513,), "rent", OPEX, "WEWORK"),
    # Utilities and telecoms
    _m("Verizon", "verizon.com", (4814,), "phone bills", OPEX, "VERIZON", "VZWRLSS"),
    _m("AT&T", "att.com", (4814,), "phone bills", OPEX, "AT T", "ATT"),
    _m("T-Mobile", "t-mobile.com", (4814,), "phone bills", OPEX, "T MOBILE", "TMOBILE"),
    _m("Comcast Xfinity", "xfinity.com", (4899,), "internet", OPEX, "COMCAST", "XFINITY"),
    _m("Vodafone", "vodafone.com", (4814,), "phone bills", OPEX, "VODAFONE"),
    _m("PG&E", "pge.com", (4900,), "utilities", OPEX, "PG E", "PGANDE", "PACIFIC GAS"),
    _m("Con Edison", "coned.com", (4900,), "utilities", OPEX, "CON ED", "CONED", "CONSOLIDATED EDISON"),
    # Fitness, entertainment, insurance
    _m("Planet Fitness", "planetfitness.com", (7997,), "gyms and fitness", OPEX, "PLANET FITNESS"),
    _m("Equinox", "equinox.com", (7997,), "gyms and fitness", OPEX, "EQUINOX"),
    _m("Peloton", "onepeloton.com", (7997,), "gyms and fitness", OPEX, "PELOTON"),
    _m("AMC Theatres", "amctheatres.com", (7832,), "entertainment", OPEX, "AMC THEATRES", "AMC"),
    _m("Ticketmaster", "ticketmaster.com", (7922,), "entertainment", OPEX, "TICKETMASTER"),
    _m("Steam", "steampowered.com", (5816,), "video games", OPEX, "STEAM", "STEAMGAMES"),
    _m(
        "PlayStation Network",
        "playstation.com",
        (5816,),
        "video games",
        OPEX,
        "PLAYSTATION",
        "SONY PLAYSTATION",
    ),
    _m("GEICO", "geico.com", (6300,), "insurance", OPEX, "GEICO"),
    _m("State Farm", "statefarm.com", (6300,), "insurance", OPEX, "STATE FARM"),
    _m("Progressive", "progressive.com", (6300,), "insurance", OPEX, "PROGRESSIVE INS", "PROGRESSIVE"),
    _m(
        "Internal Revenue Service",
        "irs.gov",
        (9311,),
        "taxes",
        "taxes",
        "IRS",
        "IRS USATAXPYMT",
        "US TREASURY",
    ),
    _m("HM Revenue & Customs", "gov.uk", (9311,), "taxes", "taxes", "HMRC"),
)


@dataclass(frozen=True, slots=True)
class Intermediary:
    """A payment processor that stands between the account holder and the counterparty.

    :param name: the display name.
    :param website: its domain.
    :param aliases: upper-case words that name it.
    :param p2p: whether people pay people through it (``Venmo payment from ...``).
    """

    name: str
    website: str
    aliases: tuple[str, ...]
    p2p: bool = False

    @property
    def phone_number(self) -> str:
        """A synthetic phone number (fiction range), stable for the intermediary."""
        return synthetic_phone_number(self.name)

    @property
    def tax_number(self) -> str:
        """A synthetic US employer identification number (``00-`` prefix: never assigned)."""
        return synthetic_tax_number(self.name)

    @property
    def naics2017(self) -> str:
        """NAICS 2017 522320: financial transactions processing, reserve and clearinghouse activities."""
        return PAYMENT_PROCESSING_NAICS_2017


INTERMEDIARIES: tuple[Intermediary, ...] = (
    Intermediary("Square, Inc.", "squareup.com", ("SQ", "SQUARE", "SQU")),
    Intermediary("PayPal", "paypal.com", ("PAYPAL", "PP"), p2p=True),
    Intermediary("Stripe", "stripe.com", ("STRIPE",)),
    Intermediary("Toast", "toasttab.com", ("TST",)),
    Intermediary("Zettle", "zettle.com", ("ZETTLE", "IZ", "IZETTLE")),
    Intermediary("SumUp", "sumup.com", ("SUMUP",)),
    Intermediary("Adyen", "adyen.com", ("ADYEN",)),
    Intermediary("Google Pay", "pay.google.com", ("GOOGLE PAY", "GPAY")),
    Intermediary("Apple Pay", "apple.com/apple-pay", ("APPLE PAY", "APL PAY", "APLPAY")),
    Intermediary("Venmo", "venmo.com", ("VENMO",), p2p=True),
    Intermediary("Zelle", "zellepay.com", ("ZELLE",), p2p=True),
    Intermediary("Cash App", "cash.app", ("CASH APP", "CASHAPP", "SQC"), p2p=True),
    Intermediary("Wise", "wise.com", ("WISE", "TRANSFERWISE"), p2p=True),
    Intermediary("Revolut", "revolut.com", ("REVOLUT",), p2p=True),
)

#: Keywords that give a category when no merchant is recognised: (words, general, accounting out, in).
KEYWORD_CATEGORIES: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("PAYROLL", "SALARY", "DIRECT DEP", "DIRECT DEPOSIT"), "salary", OPEX, "revenue"),
    (("ATM", "CASH WITHDRAWAL"), "ATM withdrawal", OPEX, "financing"),
    (("INTEREST",), "interest", "financing", "financing"),
    (("LOAN", "MORTGAGE"), "loan payments", "financing", "financing"),
    (("RENT",), "rent", OPEX, "revenue"),
    (("FEE", "OVERDRAFT", "SERVICE CHARGE"), "bank fees", OPEX, "revenue"),
    (("REFUND",), "refunds", OPEX, "revenue"),
    (("TAX",), "taxes", "taxes", "taxes"),
    (("TRANSFER", "XFER", "WIRE"), "transfers", "financing", "financing"),
)

#: Cities known to the location parser: name -> (state or region, country code, latitude, longitude).
CITIES: dict[str, tuple[str | None, str, float, float]] = {
    "NEW YORK": ("NY", "US", 40.7128, -74.0060),
    "BROOKLYN": ("NY", "US", 40.6782, -73.9442),
    "SAN FRANCISCO": ("CA", "US", 37.7749, -122.4194),
    "LOS ANGELES": ("CA", "US", 34.0522, -118.2437),
    "SAN DIEGO": ("CA", "US", 32.7157, -117.1611),
    "SAN JOSE": ("CA", "US", 37.3382, -121.8863),
    "SEATTLE": ("WA", "US", 47.6062, -122.3321),
    "PORTLAND": ("OR", "US", 45.5152, -122.6784),
    "CHICAGO": ("IL", "US", 41.8781, -87.6298),
    "BOSTON": ("MA", "US", 42.3601, -71.0589),
    "AUSTIN": ("TX", "US", 30.2672, -97.7431),
    "HOUSTON": ("TX", "US", 29.7604, -95.3698),
    "DALLAS": ("TX", "US", 32.7767, -96.7970),
    "MIAMI": ("FL", "US", 25.7617, -80.1918),
    "ATLANTA": ("GA", "US", 33.7490, -84.3880),
    "DENVER": ("CO", "US", 39.7392, -104.9903),
    "PHOENIX": ("AZ", "US", 33.4484, -112.0740),
    "PHILADELPHIA": ("PA", "US", 39.9526, -75.1652),
    "WASHINGTON": ("DC", "US", 38.9072, -77.0369),
    "LAS VEGAS": ("NV", "US", 36.1699, -115.1398),
    "TORONTO": ("ON", "CA", 43.6532, -79.3832),
    "LONDON": (None, "GB", 51.5074, -0.1278),
    "MANCHESTER": (None, "GB", 53.4808, -2.2426),
    "PARIS": (None, "FR", 48.8566, 2.3522),
    "BERLIN": (None, "DE", 52.5200, 13.4050),
    "MUNICH": (None, "DE", 48.1351, 11.5820),
    "AMSTERDAM": (None, "NL", 52.3676, 4.9041),
    "MADRID": (None, "ES", 40.4168, -3.7038),
    "LISBON": (None, "PT", 38.7223, -9.1393),
    "DUBLIN": (None, "IE", 53.3498, -6.2603),
    "SYDNEY": ("NSW", "AU", -33.8688, 151.2093),
}

#: Country names for the codes the emulator knows.
COUNTRY_NAMES: dict[str, str] = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "FR": "France",
    "DE": "Germany",
    "NL": "Netherlands",
    "ES": "Spain",
    "PT": "Portugal",
    "IE": "Ireland",
    "AU": "Australia",
    "IT": "Italy",
    "MX": "Mexico",
}

#: Two-letter US state codes (to tell ``Austin, TX 78701`` from a country).
US_STATES: frozenset[str] = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "DC",
    ]
)
