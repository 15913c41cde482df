"""Clinical records (GDC case JSON, tables, ``adata.obs``) -> short English descriptions.

``_records`` parses records, ``_facts`` extracts each fact (a table of per-field extractors),
``_fields`` chooses the facts, ``_wording`` writes the sentences, ``_llm`` lets a language model
rewrite them, ``_leaks`` checks the descriptions for label leaks, ``_describe`` ties them together.
"""
# Each line below imports one module's public names.
from ._describe import clinical_to_text
from ._facts import CLINICAL_FIELDS, DEFAULT_CLINICAL_FIELDS, ONCOTREE
from ._leaks import LabelLeakWarning

__all__ = ["clinical_to_text", "LabelLeakWarning", "CLINICAL_FIELDS", "DEFAULT_CLINICAL_FIELDS", "ONCOTREE"]
