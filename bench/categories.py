"""ImageNet-1k classes by kind, for the quality benchmark's per-category summaries:
animals (0-397), vehicles (land, water, air and rail, listed), food (dishes, fruit,
vegetables and drinks), scenes and nature (landscapes, plants, fungi, people:
970-998), and other man-made objects (the rest)."""

ANIMALS = range(0, 398)
VEHICLES = {
    403, 404, 405, 407, 408, 436, 444, 466, 468, 472, 484, 510, 511, 547, 554, 555, 565, 569, 573, 575, 576,
    586, 595, 603, 609, 612, 625, 627, 628, 654, 656, 661, 665, 670, 671, 675, 705, 717, 724, 734, 751, 757,
    779, 780, 802, 803, 814, 817, 820, 829, 833, 847, 864, 866, 867, 870, 871, 874, 880, 895, 908, 914,
}
FOOD = set(range(924, 970)) - {958, 968}
SCENES = set(range(970, 999))
ORDER = ["animals", "vehicles", "other man-made", "food", "scenes and nature"]


def category(index):
    if index in ANIMALS:
        return "animals"
    if index in VEHICLES:
        return "vehicles"
    if index in FOOD:
        return "food"
    if index in SCENES:
        return "scenes and nature"
    return "other man-made"
