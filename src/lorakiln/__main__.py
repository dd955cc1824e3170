from lorakiln.cli.app import main

main()
