"""Word lists the sample generator composes names from.

Plain data, kept apart from the generator so the logic stays readable. Every list is a tuple in a
fixed order: the generator draws from them with a seeded RNG, so reordering a list changes the
database (and then the committed question pairs must be regenerated).
"""

from __future__ import annotations

# Sales regions -> country -> cities. Region, country and city names are unique across the map so
# a city alone identifies its country (questions name cities without a country).
REGIONS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("US Northeast", (("United States", ("New York", "Boston", "Philadelphia", "Pittsburgh", "Hartford")),)),
    ("US Midwest", (("United States", ("Chicago", "Detroit", "Minneapolis", "Columbus", "Milwaukee")),)),
    ("US South", (("United States", ("Atlanta", "Dallas", "Houston", "Miami", "Nashville", "Charlotte")),)),
    ("US West", (("United States", ("Los Angeles", "San Francisco", "Seattle", "Denver", "Phoenix", "Portland")),)),
    ("Canada", (("Canada", ("Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa")),)),
    ("UK & Ireland", (
        ("United Kingdom", ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Edinburgh")),
        ("Ireland", ("Dublin", "Cork")),
    )),
    ("DACH", (
        ("Germany", ("Berlin", "Munich", "Hamburg", "Frankfurt", "Cologne")),
        ("Austria", ("Vienna",)),
        ("Switzerland", ("Zurich", "Geneva")),
    )),
    ("Benelux", (("Netherlands", ("Amsterdam", "Rotterdam", "Utrecht")), ("Belgium", ("Brussels", "Antwerp")))),
    ("France", (("France", ("Paris", "Lyon", "Marseille", "Toulouse", "Lille")),)),
    ("Nordics", (
        ("Sweden", ("Stockholm", "Gothenburg")),
        ("Denmark", ("Copenhagen",)),
        ("Norway", ("Oslo",)),
        ("Finland", ("Helsinki",)),
    )),
)

# Which name list a region's people are drawn from.
REGION_LOCALE = {
    "US Northeast": "en", "US Midwest": "en", "US South": "en", "US West": "en", "Canada": "en",
    "UK & Ireland": "en", "DACH": "de", "Benelux": "nl", "France": "fr", "Nordics": "nordic",
}

FIRST_NAMES = {
    "en": ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda", "William",
           "Elizabeth", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Daniel", "Karen",
           "Matthew", "Nancy", "Anthony", "Lisa", "Mark", "Emily", "Steven", "Rachel", "Andrew",
           "Laura", "Kevin", "Megan", "Brian", "Hannah", "Ryan", "Olivia", "Jason", "Chloe", "Aaron",
           "Grace", "Priya", "Omar", "Mei", "Carlos", "Aisha", "Liam", "Fiona", "Connor"),
    "de": ("Lukas", "Anna", "Jonas", "Lena", "Felix", "Laura", "Maximilian", "Sophie", "Paul",
           "Marie", "Tobias", "Katharina", "Stefan", "Julia", "Florian", "Sabine", "Matthias",
           "Claudia", "Andreas", "Petra", "Jan", "Miriam"),
    "nl": ("Daan", "Emma", "Sem", "Julia", "Lucas", "Sanne", "Thijs", "Fleur", "Bram", "Lotte",
           "Ruben", "Anouk", "Pieter", "Femke", "Jeroen", "Eva"),
    "fr": ("Louis", "Camille", "Hugo", "Chloé", "Lucas", "Manon", "Nathan", "Léa", "Antoine",
           "Juliette", "Julien", "Claire", "Mathieu", "Élodie", "Nicolas", "Sophie", "Pierre",
           "Amélie", "Thomas", "Céline"),
    "nordic": ("Erik", "Ingrid", "Lars", "Astrid", "Mikael", "Freja", "Anders", "Sofia", "Johan",
               "Elin", "Oskar", "Maja", "Henrik", "Sanna", "Mikko", "Aino", "Nils", "Karin"),
}

# Two surnames carry an apostrophe on purpose: gold SQL must escape it ('O''Brien').
LAST_NAMES = {
    "en": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
           "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
           "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green",
           "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter",
           "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart", "Morris",
           "Murphy", "Cook", "Rogers", "Patel", "Chen", "Nguyen", "Kowalski", "O'Brien", "O'Neill",
           "Fitzgerald", "Hughes", "Kennedy", "Sullivan", "Bennett", "Foster", "Hayes", "Reid"),
    "de": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
           "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
           "Braun", "Zimmermann", "Hartmann", "Krüger", "Lange", "Huber", "Gruber", "Brunner"),
    "nl": ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser",
           "Smit", "Meijer", "de Boer", "Mulder", "Peeters", "Maes", "Janssens", "Claes", "Willems"),
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
           "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David",
           "Bertrand", "Roux", "Vincent", "Fournier", "Girard", "Bonnet"),
    "nordic": ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Hansen",
               "Jensen", "Nielsen", "Pedersen", "Olsen", "Berg", "Haugen", "Virtanen", "Korhonen",
               "Lindqvist", "Holm", "Dahl"),
}

# Legal-form suffixes by country, for customer and supplier names.
COMPANY_SUFFIX = {
    "United States": ("Inc.", "LLC", "", "Co."), "Canada": ("Inc.", "Ltd.", ""),
    "United Kingdom": ("Ltd", "", "plc"), "Ireland": ("Ltd", ""), "Germany": ("GmbH", "AG"),
    "Austria": ("GmbH",), "Switzerland": ("AG", "GmbH"), "Netherlands": ("B.V.",),
    "Belgium": ("NV", "BV"), "France": ("SAS", "SA"), "Sweden": ("AB",), "Denmark": ("A/S",),
    "Norway": ("AS",), "Finland": ("Oy",),
}

COMPANY_PREFIXES = (
    "Summit", "Riverside", "Northgate", "Bluewater", "Oakridge", "Pinecrest", "Harbor", "Silverline",
    "Granite", "Maple", "Cedar", "Lakeside", "Evergreen", "Brightwater", "Ironwood", "Redwood",
    "Westfield", "Eastbrook", "Highland", "Crescent", "Pioneer", "Keystone", "Beacon", "Horizon",
    "Sterling", "Vantage", "Cornerstone", "Apex", "Trident", "Lighthouse", "Fairview", "Stonebridge",
    "Clearwater", "Ashford", "Whitmore", "Kingsley", "Juniper", "Orchard", "Bayside", "Hawthorne",
)

# Segment -> industries it sells to; industry -> company-name nouns.
SEGMENTS = (  # (segment, share of customers)
    ("Enterprise", 0.10), ("Mid-Market", 0.25), ("Small Business", 0.45),
    ("Public Sector", 0.12), ("Education", 0.08),
)
SEGMENT_INDUSTRIES = {
    "Enterprise": ("Finance", "Manufacturing", "Technology", "Healthcare", "Logistics", "Retail"),
    "Mid-Market": ("Finance", "Manufacturing", "Technology", "Healthcare", "Legal", "Logistics",
                   "Retail", "Hospitality", "Real Estate"),
    "Small Business": ("Legal", "Healthcare", "Technology", "Retail", "Hospitality", "Real Estate",
                       "Finance"),
    "Public Sector": ("Government",),
    "Education": ("Education",),
}
INDUSTRY_NOUNS = {
    "Finance": ("Capital", "Accounting", "Insurance", "Financial Advisors", "Wealth Partners"),
    "Manufacturing": ("Manufacturing", "Industries", "Engineering", "Fabrication", "Plastics"),
    "Technology": ("Software", "Systems", "Digital", "Labs", "Networks"),
    "Healthcare": ("Medical Center", "Dental Group", "Health Clinic", "Pharmacy", "Physiotherapy"),
    "Logistics": ("Logistics", "Freight", "Distribution", "Transport"),
    "Retail": ("Outfitters", "Market", "Stores", "Home Goods", "Books"),
    "Legal": ("Law Group", "Legal Partners", "Solicitors", "Notaries"),
    "Hospitality": ("Hotels", "Hospitality Group", "Catering", "Events"),
    "Real Estate": ("Properties", "Realty", "Estates"),
    "Government": ("City Council", "County Services", "Water Authority", "Transit Agency",
                   "Public Library"),
    "Education": ("Academy", "College", "School District", "Learning Center", "Institute"),
}

# Category -> (sku prefix, description, ((base item, low price, high price), ...)).
CATALOG: tuple[tuple[str, str, str, tuple[tuple[str, float, float], ...]], ...] = (
    ("Paper & Notebooks", "PAP", "Copy paper, notebooks, pads and sticky notes", (
        ("A4 Copy Paper 80gsm, Box of 5 Reams", 22, 32), ("Letter Copy Paper, Case of 10 Reams", 45, 62),
        ("Spiral Notebook A5", 3, 6), ("Hardcover Notebook A4", 8, 15),
        ("Sticky Notes 76x76mm, 12 Pads", 6, 11), ("Legal Pads, Pack of 12", 12, 19),
        ("Recycled Printer Paper, Ream", 5, 8), ("Index Cards, Pack of 100", 2, 4))),
    ("Writing Instruments", "WRI", "Pens, pencils, markers and highlighters", (
        ("Ballpoint Pens Blue, Box of 50", 9, 16), ("Gel Pens Assorted, Pack of 12", 8, 14),
        ("Permanent Markers Black, Pack of 12", 10, 17), ("Highlighters Assorted, Pack of 6", 5, 9),
        ("Whiteboard Markers, Pack of 8", 7, 13), ("Mechanical Pencils 0.5mm, Pack of 10", 6, 11),
        ("Fountain Pen", 25, 80), ("Fineliner Set, 20 Colours", 14, 24))),
    ("Desk Accessories", "DSK", "Staplers, organizers, lamps and small desk tools", (
        ("Heavy-Duty Stapler", 18, 45), ("Staples 26/6, Box of 5000", 3, 6), ("Tape Dispenser", 7, 16),
        ("Mesh Desk Organizer", 12, 25), ("Monitor Riser", 25, 60), ("Stackable Letter Tray", 6, 12),
        ("Paper Clips, Box of 1000", 4, 8), ("Scissors 21cm", 4, 10), ("LED Desk Lamp", 28, 75))),
    ("Filing & Storage", "FIL", "Binders, folders, archive boxes and cabinets", (
        ("Lever Arch File A4", 3, 6), ("Ring Binder 2-Ring", 2, 5),
        ("Hanging File Folders, Box of 25", 14, 24), ("Archive Storage Box, Pack of 10", 18, 32),
        ("Document Wallet, Pack of 10", 9, 15), ("4-Drawer Filing Cabinet", 180, 390),
        ("Label Maker Tape 12mm", 11, 19))),
    ("Printer Ink & Toner", "INK", "Toner, ink cartridges and printer consumables", (
        ("Black Toner Cartridge", 55, 120), ("High-Yield Black Toner", 95, 190),
        ("Colour Toner Set CMY", 180, 360), ("Inkjet Cartridge Black XL", 25, 48),
        ("Inkjet Cartridge Tri-Colour", 22, 42), ("Drum Unit", 70, 160), ("Thermal Label Roll", 6, 12))),
    ("Office Furniture", "FUR", "Chairs, desks, tables and storage furniture", (
        ("Ergonomic Mesh Office Chair", 180, 520), ("Height-Adjustable Desk", 350, 900),
        ("Conference Table 8-Seat", 600, 1500), ("Visitor Chair", 60, 150),
        ("Mobile Pedestal 3-Drawer", 120, 260), ("Bookcase 5-Shelf", 90, 240),
        ("Adjustable Footrest", 25, 55))),
    ("Technology Accessories", "TEC", "Keyboards, monitors, cables and docking stations", (
        ("Wireless Keyboard and Mouse Set", 35, 90), ("USB-C Docking Station", 110, 260),
        ("24-inch Monitor", 140, 320), ("Noise-Cancelling Headset", 60, 210), ("HDMI Cable 2m", 6, 15),
        ("USB Flash Drive 64GB", 8, 19), ("Webcam 1080p", 40, 110), ("Surge Protector 6-Outlet", 18, 40),
        ("Laptop Stand", 25, 60))),
    ("Breakroom Supplies", "BRK", "Coffee, tea, cups and kitchen consumables", (
        ("Ground Coffee 1kg", 14, 30), ("Coffee Pods, Box of 100", 28, 55),
        ("Tea Bags Assorted, Box of 200", 12, 24), ("Paper Cups 8oz, Pack of 1000", 35, 60),
        ("Bottled Water, Case of 24", 6, 12), ("Sugar Sticks, Box of 1000", 9, 16),
        ("Paper Towels, Case of 12 Rolls", 16, 30))),
    ("Cleaning & Janitorial", "CLN", "Cleaners, sanitizers, bags and tissue", (
        ("Multi-Surface Cleaner 5L", 12, 24), ("Hand Sanitizer 500ml, Pack of 6", 14, 28),
        ("Trash Bags 60L, Roll of 50", 6, 13), ("Disinfecting Wipes, Tub of 80", 5, 10),
        ("Microfibre Cloths, Pack of 10", 8, 16), ("Toilet Tissue, Case of 48 Rolls", 25, 45))),
    ("Mailing & Shipping", "MAI", "Envelopes, boxes, tape and labels", (
        ("Padded Envelopes C4, Box of 100", 25, 45), ("Shipping Boxes Medium, Pack of 25", 20, 38),
        ("Packing Tape 48mm, Pack of 6", 9, 16), ("Bubble Wrap Roll 50m", 18, 34),
        ("Shipping Labels A4, Box of 100 Sheets", 12, 22), ("Window Envelopes DL, Box of 500", 16, 28))),
    ("Presentation & Display", "PRS", "Whiteboards, flipcharts and presentation tools", (
        ("Magnetic Whiteboard 120x90cm", 70, 160), ("Flipchart Easel", 90, 190),
        ("Flipchart Pads, Pack of 5", 30, 55), ("Cork Notice Board", 20, 45),
        ("Wireless Presenter", 25, 65), ("Projector Screen 100-inch", 120, 280))),
    ("Safety & First Aid", "SAF", "First aid kits, extinguishers and protective equipment", (
        ("First Aid Kit 50-Person", 45, 95), ("CO2 Fire Extinguisher 2kg", 55, 110),
        ("Hi-Vis Safety Vests, Pack of 10", 20, 40), ("Nitrile Gloves, Box of 100", 8, 16),
        ("LED Emergency Exit Sign", 40, 90), ("Ear Plugs, Box of 200", 18, 32))),
)

# House and third-party brands; a product is "<brand> <base item>".
BRANDS = ("Clearline", "Penmark", "Officio", "Stackwell", "Northpoint", "Brightdesk", "Tessera",
          "Kestrel", "Ardent", "Bluefield", "Copperleaf", "Verano")

# (supplier name stem, country, city): some cities coincide with customer cities on purpose, so
# set-operation questions ("cities with both customers and suppliers") have answers.
SUPPLIERS = (
    ("Atlas Paper", "United States", "Chicago"), ("Meridian Office Wholesale", "United States", "Dallas"),
    ("Great Lakes Stationery", "United States", "Detroit"), ("Pacific Print Supplies", "United States", "Seattle"),
    ("Liberty Furniture Works", "United States", "Charlotte"), ("Summit Tech Distribution", "United States", "San Francisco"),
    ("Maple Leaf Supply", "Canada", "Toronto"), ("Northern Janitorial", "Canada", "Calgary"),
    ("Thames Office Products", "United Kingdom", "London"), ("Pennine Packaging", "United Kingdom", "Leeds"),
    ("Celtic Paper Mills", "Ireland", "Cork"), ("Hanse Bürobedarf", "Germany", "Hamburg"),
    ("Rheinland Druck", "Germany", "Cologne"), ("Alpen Möbel", "Austria", "Graz"),
    ("Helvetia Safety", "Switzerland", "Basel"), ("Dutch Office Trade", "Netherlands", "Rotterdam"),
    ("Flanders Carton", "Belgium", "Ghent"), ("Papeterie du Rhône", "France", "Lyon"),
    ("Atelier Bureau", "France", "Nantes"), ("Nordic Pulp", "Sweden", "Gothenburg"),
    ("Fjord Supply", "Norway", "Bergen"), ("Suomi Clean", "Finland", "Tampere"),
    ("Shenzhen Bright Electronics", "China", "Shenzhen"), ("Taipei Peripheral", "Taiwan", "Taipei"),
    ("Osaka Writing Co", "Japan", "Osaka"),
)
SUPPLIER_SUFFIX_EXTRA = {"China": ("Ltd",), "Taiwan": ("Corp.",), "Japan": ("K.K.",)}

# carrier -> (base shipping cost, transit days low, high); country group -> carriers used there.
CARRIERS = {
    "UPS": (9.5, 1, 4), "FedEx": (11.0, 1, 3), "USPS": (6.5, 2, 6), "Canada Post": (7.0, 2, 6),
    "DHL": (8.5, 1, 3), "DPD": (7.5, 1, 4), "GLS": (6.9, 2, 5),
}
CARRIERS_BY_COUNTRY = {"United States": ("UPS", "FedEx", "USPS"), "Canada": ("UPS", "FedEx", "Canada Post")}
CARRIERS_EUROPE = ("UPS", "DHL", "DPD", "GLS")

ORDER_CHANNELS = (("online", 0.38), ("email", 0.20), ("phone", 0.14), ("sales_visit", 0.18), ("edi", 0.10))
PAYMENT_METHODS = ("bank_transfer", "credit_card", "direct_debit", "check")
JOB_TITLES = ("VP of Sales", "Regional Sales Manager", "Account Executive", "Sales Representative")
