"""The zoo as a user meets it: configs from any folder (:mod:`facezoo.hub.configs`).

Cheap to import: nothing here loads torch.
"""
