from mediaforge.cli import main

main()
