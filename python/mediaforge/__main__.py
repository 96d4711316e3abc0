from mediaforge._entry import main

main()
