"""specsearch.models"""
