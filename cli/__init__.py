"""specsearch.cli"""
