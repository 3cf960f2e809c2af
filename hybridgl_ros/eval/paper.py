"""The paper's numbers (oIoU, mIoU), to print beside a run's. Source: hybridgl_paper.txt."""
from __future__ import annotations

#: Table 1 (RefCOCO/+/g) and Table 2 (PhraseCut): HybridGL with spatial guidance.
TABLE1 = {
    ('refcoco', 'val'): (41.81, 49.48),
    ('refcoco', 'testA'): (44.52, 53.37),
    ('refcoco', 'testB'): (38.50, 45.19),
    ('refcoco+', 'val'): (35.74, 43.40),
    ('refcoco+', 'testA'): (41.43, 49.13),
    ('refcoco+', 'testB'): (30.90, 37.17),
    ('refcocog', 'val'): (42.47, 51.25),
    ('refcocog', 'test'): (42.97, 51.59),
    ('phrasecut', 'test'): (38.39, 36.98),
}

#: Table 3 (val splits, no spatial guidance): features.mode -> the paper's row name and
#: {dataset: (oIoU, mIoU)}. 'G' is the paper's G(blur+att_mask).
TABLE3 = {
    'L': ('L', {'refcoco': (24.65, 32.64), 'refcoco+': (28.16, 36.44),
                'refcocog': (33.63, 42.35)}),
    'G': ('G(blur+att_mask)', {'refcoco': (27.63, 37.12), 'refcoco+': (29.75, 39.94),
                               'refcocog': (33.03, 44.45)}),
    'G+L': ('G + L', {'refcoco': (28.90, 37.64), 'refcoco+': (32.27, 41.12),
                      'refcocog': (38.08, 47.51)}),
    'L2G': ('L2G', {'refcoco': (29.93, 39.17), 'refcoco+': (33.17, 42.55),
                    'refcocog': (37.71, 47.20)}),
    'G2L': ('G2L', {'refcoco': (31.71, 40.27), 'refcoco+': (34.44, 43.40),
                    'refcocog': (39.12, 48.64)}),
    'G2L+L2G': ('G2L + L2G', {'refcoco': (31.32, 40.23), 'refcoco+': (34.63, 43.73),
                              'refcocog': (38.43, 48.22)}),
}

#: Table 5 (val splits, G2L features): (relation, coherence, position) -> {dataset: (oIoU, mIoU)}.
#: The first row has no spatial guidance at all (it equals Table 3's G2L row).
TABLE5 = {
    (False, False, False): {'refcoco': (31.71, 40.27), 'refcocog': (39.12, 48.64)},
    (True, False, False): {'refcoco': (35.68, 44.29), 'refcocog': (39.68, 48.99)},
    (True, True, False): {'refcoco': (35.68, 44.29), 'refcocog': (39.73, 49.02)},
    (True, True, True): {'refcoco': (41.81, 49.48), 'refcocog': (42.47, 51.25)},
}

DATASET_TITLES = {'refcoco': 'RefCOCO', 'refcoco+': 'RefCOCO+', 'refcocog': 'RefCOCOg',
                  'phrasecut': 'PhraseCut'}
