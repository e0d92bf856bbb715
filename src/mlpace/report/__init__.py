"""Static HTML report site drawn from the results store (offline, no CDN, inline SVG plots)."""
