from sandkit.cli import main

raise SystemExit(main())
