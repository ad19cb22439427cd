from e4e_bench.cli import main

raise SystemExit(main())
