"""Distribution shift between a reference sample and a deployment sample: detecting it and
estimating what it does to accuracy without the deployment labels (:mod:`.estimate`).

Importing this package is cheap: scikit-learn loads only inside the functions that need it.
"""
