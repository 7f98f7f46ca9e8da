from immich_dupes.cli import main

raise SystemExit(main())
