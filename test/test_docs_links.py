"""Every relative link of the project's Markdown (README, docs/, the model card) reaches a file
that is there, and every #anchor a heading of that file, as GitHub makes anchors from headings.
The README's measurements live in docs/measurements.md; a section moved between them must not
leave a link behind."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md')),
        ROOT / 'hybridgl_ros' / 'demo_models' / 'MODEL_CARD.md']
LINK = re.compile(r'\]\(([^)\s]+)\)')


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters, digits, '_' and
    '-' kept), spaces to '-'."""
    text = heading.strip().lower()
    return ''.join(c for c in text if c.isalnum() or c in ' -_').replace(' ', '-')


def anchors(path: Path) -> set[str]:
    found, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith('```'):
            fenced = not fenced
        if fenced or not re.match(r'#{1,6} ', line):
            continue
        anchor = github_anchor(line.lstrip('#'))
        n = seen.get(anchor, 0)
        seen[anchor] = n + 1
        found.add(anchor if n == 0 else f'{anchor}-{n}')
    return found


def links(path: Path):
    fenced = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith('```'):
            fenced = not fenced
        if fenced:
            continue
        for target in LINK.findall(line):
            if not re.match(r'[a-z]+:', target):
                yield number, target


def test_the_anchor_rule_matches_the_headings_the_readme_links_to():
    assert github_anchor("Small objects: SAM's score filters") == \
        'small-objects-sams-score-filters'
    assert github_anchor('The tuning series at 0.6 times the size') == \
        'the-tuning-series-at-06-times-the-size'
    assert github_anchor('Calibrating for your weights (gRefCOCO)') == \
        'calibrating-for-your-weights-grefcoco'


@pytest.mark.parametrize('doc', DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(doc):
    broken = []
    for number, target in links(doc):
        file_part, _, anchor = target.partition('#')
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f'{doc.name}:{number}: {target} (no such file)')
        elif anchor and path.suffix == '.md' and anchor not in anchors(path):
            broken.append(f'{doc.name}:{number}: {target} (no such heading)')
    assert not broken, '\n'.join(broken)
