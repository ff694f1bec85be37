from imagelock._fastpath import main

main()
