from dlakit.cli import main

main()
