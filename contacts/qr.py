"""QR codes rendered on the server (no network): inline SVG for the login page and the API."""
import segno


def qr_svg(content, scale=5):
    """An inline <svg> element for `content` (the string the phone scans)."""
    return segno.make(content, error="m").svg_inline(scale=scale, dark="#000", light="#fff")
