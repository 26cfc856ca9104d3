"""Products: GeoJSON, styled GeoPackage, QGIS styles, evidence packets, reports, reviews."""
