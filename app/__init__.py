"""specsearch.app"""
