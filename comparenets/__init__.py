"""comparenets: convolutional and recurrent networks side by side on the same tasks, measured.

Importing the package is cheap; the heavy parts load with their submodules:
``comparenets.models`` (backbones), ``comparenets.tasks`` (tasks),
``comparenets.train`` (``train_and_evaluate``).
"""

__version__ = '0.1.0'
