"""Objects: masks to polygons, clean-up, merge across block edges, construction classes."""
