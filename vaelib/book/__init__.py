"""The chapters' teaching helpers: code that one chapter of the book uses to show an idea.

The reusable library sits at the top of ``vaelib``; this subpackage holds what the chapters
need beyond it: backpropagation written by hand, PCA, gradient descent on :math:`x^2`, network
drawings, divergences on a grid, the KL in two parts, gradient estimators, sums and means of a
loss, metrics, the linear-Gaussian model whose evidence and posterior are exact, the paper's
figures (chapter 9), an encoder that ignores its input (chapter 10), the data sets and checks the chapters use, and the explorers (sliders live
in Jupyter, kernel-free on the website). Importing it has no side effects.
"""
