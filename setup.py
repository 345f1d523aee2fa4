"""comparenets: CNNs, TCNs, simple RNNs, LSTMs and GRUs compared on the same tasks, in JAX/Flax."""

from setuptools import find_packages, setup

setup(
    name='comparenets',
    version='0.1.0',
    description='Convolutional and recurrent networks side by side on the same tasks, measured.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.11',
    packages=find_packages(include=['comparenets', 'comparenets.*']),
    install_requires=[
        'jax>=0.10.2,<0.11',
        'flax>=0.12.8,<0.13',
        'optax>=0.2.8,<0.3',
        'orbax-checkpoint>=0.12.8,<0.13',
        'etils[epath]>=1.7,<2',  # workdir files, local or gs://
        'tensorflow-datasets>=4.9.10,<5',
        # worker processes reading TFDS training batches ahead (task.read_workers)
        'grain>=0.2.18,<0.3',
        'absl-py>=2.1,<3',
        'ml-collections>=1.1,<2',
        'numpy>=2.0,<3',
        'scipy>=1.11,<2',  # t and normal quantiles of the report's intervals and Welch's test
        'scikit-learn>=1.5,<2',
        'scikit-image>=0.24,<1',  # sample photographs, bicubic/Sobel/Canny baselines, SSIM
        'tensorboardX>=2.6.2,<3',
        'tqdm>=4.66,<5',
        # JAX's persistent compilation cache reads nothing back without it once a size limit
        # is set (runtime.enable_compilation_cache): every entry was a warning and a recompile
        'filelock>=3.12,<5',
        'matplotlib>=3.8,<4',
        'music21>=10.5,<11',  # the Bach chorales of the song task ship in its wheel
        'statsmodels>=0.14.2,<0.16',  # the sunspots series of the forecasting task
    ],
    extras_require={
        # gs:// workdirs without TensorFlow: epath reads and writes them through fsspec/gcsfs
        'gcs': ['gcsfs>=2024.2'],
        # the TensorBoard server over a run's tensorboard/ (tests/test_tensorboard.py serves one);
        # the events are written by tensorboardX, so neither pulls in TensorFlow
        'tb': ['tensorboard>=2.20,<3'],
        'test': [
            'pytest>=8,<10',
            'pytest-xdist>=3.6,<4',
            'hypothesis>=6.100,<7',
            # tests/test_notebook.py executes experiments/notebook.ipynb
            'nbclient>=0.10,<0.12',
            'nbformat>=5.10,<6',
            'ipykernel>=6.29,<8',
        ],
    },
    entry_points={
        'console_scripts': [
            'comparenets-train=comparenets.main:run',
            'comparenets-compare=comparenets.compare:run',
        ],
    },
)
