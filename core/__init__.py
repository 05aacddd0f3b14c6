"""specsearch.core"""
