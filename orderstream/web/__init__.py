"""HTTP views served by every worker (Faust web, aiohttp). The app's autodiscovery imports each
module of this package; `server` is the aiohttp driver they run on."""
