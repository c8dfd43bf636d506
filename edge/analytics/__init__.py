"""Pure analytics over tracked detections: tracks, lines, zones, speed, incident rules, tampering, bins."""
