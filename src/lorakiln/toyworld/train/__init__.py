"""Training scripts for the toy world's models (docs/toyworld.md, "The world's models"):

    python -m lorakiln.toyworld.train.tagger --out DIR --seed 0     # WD-layout tagger
    python -m lorakiln.toyworld.train.identity --out DIR --seed 0   # CCIP-layout identity model

Each runs on one CPU thread, prints its progress and measured quality, and writes the files
kiln loads (the committed copies are in lorakiln/toyworld/weights/).
"""
