"""blastscope: leukemia white-blood-cell image classification toolkit.

Implements SDCT-AuxNet-theta (Gehlot et al. 2020), LeukoNet (Mourya et al. 2018),
Spike-PCA-ResNet (Noshad & Fallahi 2021) and LeukemiaNet in one package.
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
