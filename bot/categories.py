"""arXiv's category taxonomy (https://arxiv.org/category_taxonomy), for validating `cat:`."""

from __future__ import annotations

_SUBJECTS = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS "
    "NA NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA "
    "RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
    "gr-qc": "",
    "hep-ex": "",
    "hep-lat": "",
    "hep-ph": "",
    "hep-th": "",
    "math-ph": "",
    "nucl-ex": "",
    "nucl-th": "",
    "quant-ph": "",
}

ARCHIVES = frozenset(_SUBJECTS)
CATEGORIES = frozenset(
    f"{archive}.{subject}"
    for archive, subjects in _SUBJECTS.items()
    for subject in subjects.split()
)


def has_subjects(archive: str) -> bool:
    return bool(_SUBJECTS.get(archive))


def categories_of(archive: str) -> tuple[str, ...]:
    """The archive's categories (`cs` -> `cs.AI`, `cs.AR`, ...); none for `hep-th` and kin."""
    return tuple(f"{archive}.{subject}" for subject in _SUBJECTS.get(archive, "").split())


def is_known(name: str) -> bool:
    return name in CATEGORIES or name in ARCHIVES


def suggestion(name: str) -> str | None:
    """The known category spelled like `name` but for case (`cs.cl` -> `cs.CL`)."""
    folded = name.casefold()
    return next((c for c in sorted(CATEGORIES | ARCHIVES) if c.casefold() == folded), None)
