"""services: the small services (Finger, SYSTAT, MSP), see ctrl/services.ini."""
