"""Ensembles as data: manifests of members, member loading, instance fusion, submission writers."""
