"""This project's own components, plugged into ATRIOM through conf/.

ATRIOM builds every plug-in from a ``_target_`` in the config: add a class here and name it
there (see ``conf/active/curriculum/motion_energy.yaml`` for the example below).
"""
