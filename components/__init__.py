"""Thin KFP components: each moves artifacts in and out and calls one genops step.

Import guard: only the standard library and kfp at module level; everything else is imported
inside the component body (KFP ships only the function's source to the executor).
"""
