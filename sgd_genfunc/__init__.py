"""sgd_genfunc package."""
