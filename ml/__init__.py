"""Framework-free machine learning for shop-search: encoders, attention fusion, training.

Nothing here imports Django. The contract the web side codes against is ``ml.model``
(``load_model``, ``SearchModel``, ``FusionInput``, ``ProductInput``). Importing ``ml``
itself stays cheap: torch and transformers load only when a model module is imported.
"""
