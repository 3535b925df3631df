#!/usr/bin/env bash
# Regenerates test/fixtures/images/*. The outputs are committed: tests and CI never run this script.
# Needs (Debian): python3-pil imagemagick libjpeg-turbo-progs   (optional check: libimage-exiftool-perl)
#   apt-get install -y python3-pil imagemagick libjpeg-turbo-progs libimage-exiftool-perl
# Every fixture is drawn from one "chart" (see README.md there), so tests can assert known colours at known pixels.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/test/fixtures/images"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# /usr/local/bin/convert may be a stand-in on some machines: use Debian's ImageMagick explicitly.
IM=/usr/bin/convert
PY=/usr/bin/python3

"$PY" - "$out" "$tmp" <<'PYEOF'
import struct, sys, zlib
from PIL import Image

out, tmp = sys.argv[1], sys.argv[2]

# The chart: 4 columns x 3 rows of 16x16 cells (64x48). Corners are distinct, everything else mid grey,
# so any of the 8 EXIF transforms applied wrongly shows up at a corner. 16-pixel cells keep every colour
# inside whole JPEG MCUs (even with 4:2:0 chroma subsampling), so JPEG colours stay close to exact.
RED, GREEN, BLUE, YELLOW, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (128, 128, 128)
CELL, COLS, ROWS = 16, 4, 3

def chart():
    im = Image.new('RGB', (COLS * CELL, ROWS * CELL), GREY)
    for (cx, cy), colour in {(0, 0): RED, (COLS - 1, 0): GREEN, (0, ROWS - 1): BLUE, (COLS - 1, ROWS - 1): YELLOW}.items():
        im.paste(colour, (cx * CELL, cy * CELL, (cx + 1) * CELL, (cy + 1) * CELL))
    return im

upright = chart()
upright.save(f'{tmp}/chart.png')
upright.save(f'{tmp}/chart.ppm')

# ---- EXIF orientation fixtures -------------------------------------------------------------------------------
# The stored pixels for orientation N are the inverse of the transform a viewer applies for N, so that every
# file displays as the upright chart. PIL's own table (ImageOps.exif_transpose) is display = method(stored).
T = Image.Transpose
display_method = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
                  6: T.ROTATE_270, 7: T.TRANSVERSE, 8: T.ROTATE_90}
inverse = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE,
           6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}

def tiff_ifd0(order, orientation):
    """A minimal TIFF block: IFD0 with Make (ASCII, stored at an offset), Orientation (SHORT) and XResolution
    (RATIONAL, at an offset), so the parser has to walk past other entries and ignore offset-valued ones."""
    e = '<' if order == 'II' else '>'
    make = b'edgehead\0'
    n = 3
    ifd_off = 8
    data_off = ifd_off + 2 + n * 12 + 4
    make_off, xres_off = data_off, data_off + len(make) + (len(make) & 1)
    b = order.encode() + struct.pack(e + 'HI', 42, ifd_off)
    b += struct.pack(e + 'H', n)
    b += struct.pack(e + 'HHII', 0x010F, 2, len(make), make_off)            # Make
    b += struct.pack(e + 'HHIHH', 0x0112, 3, 1, orientation, 0)             # Orientation, SHORT in the value field
    b += struct.pack(e + 'HHII', 0x011A, 5, 1, xres_off)                    # XResolution
    b += struct.pack(e + 'I', 0)                                           # no IFD1
    b += make + (b'\0' if len(make) & 1 else b'')
    b += struct.pack(e + 'II', 72, 1)
    return b

def with_app1(jpeg, tiff):
    payload = b'Exif\0\0' + tiff
    seg = b'\xff\xe1' + struct.pack('>H', len(payload) + 2) + payload
    assert jpeg[:2] == b'\xff\xd8'
    return jpeg[:2] + seg + jpeg[2:]

for n in range(1, 9):
    stored = upright if n == 1 else upright.transpose(inverse[n])
    # self-check against PIL's display table: showing the stored image must give the chart back
    shown = stored if n == 1 else stored.transpose(display_method[n])
    assert list(shown.getdata()) == list(upright.getdata()), n
    stored.save(f'{tmp}/o{n}.jpg', quality=95, subsampling=0)   # 4:4:4
    order = 'MM' if n % 2 else 'II'                              # odd: big-endian (Motorola), even: little-endian (Intel)
    with open(f'{tmp}/o{n}.jpg', 'rb') as f:
        data = with_app1(f.read(), tiff_ifd0(order, n))
    with open(f'{out}/orient-{n}.jpg', 'wb') as f:
        f.write(data)

# ---- PNG colour types ----------------------------------------------------------------------------------------
upright.save(f'{out}/png-rgb8.png')
upright.convert('L').save(f'{out}/png-gray8.png')
upright.convert('1', dither=Image.Dither.NONE).save(f'{out}/png-gray1.png')
upright.convert('P', palette=Image.Palette.ADAPTIVE, colors=8).save(f'{out}/png-palette.png')
la = upright.convert('L'); la.putalpha(200)
la.save(f'{out}/png-graya8.png')
rgba = upright.copy().convert('RGBA')
rgba.paste((0, 255, 0, 128), (CELL, CELL, 2 * CELL, 2 * CELL))     # a half-transparent green cell at (1,1)
rgba.save(f'{out}/png-rgba8.png')
# 16-bit grey: values spread over the full 16-bit range so 8-bit rescaling is tested
g16 = Image.new('I;16', upright.size, 0x8080)
g16.paste(0xFFFF, (0, 0, CELL, CELL))
g16.paste(0x0000, (3 * CELL, 2 * CELL, 4 * CELL, 3 * CELL))
g16.save(f'{out}/png-gray16.png')
# CMYK JPEG as Photoshop/PIL write it: 4 components, Adobe APP14 transform 0, inverted ("Adobe") CMYK values.
# (PIL's RGB->CMYK is the naive C=255-R, M=255-G, Y=255-B, K=0.)
upright.convert('CMYK').save(f'{out}/jpeg-cmyk.jpg', quality=90)
# A PNG with an eXIf chunk (orientation 6), stored rotated like orient-6.jpg
upright.transpose(inverse[6]).save(f'{out}/png-exif-6.png', exif=b'Exif\0\0' + tiff_ifd0('II', 6))

# ---- PNG "bomb": IHDR says 100000 x 100000 RGBA, with one tiny IDAT. Valid CRCs everywhere. ------------------
def chunk(kind, body):
    return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)
bomb = b'\x89PNG\r\n\x1a\n'
bomb += chunk(b'IHDR', struct.pack('>IIBBBBB', 100000, 100000, 8, 6, 0, 0, 0))
bomb += chunk(b'IDAT', zlib.compress(b'\0' * 1024))
bomb += chunk(b'IEND', b'')
with open(f'{out}/png-bomb.png', 'wb') as f:
    f.write(bomb)
PYEOF

# ---- JPEG flavours, from the same chart ---------------------------------------------------------------------
cjpeg -quality 90 -outfile "$out/jpeg-baseline.jpg" "$tmp/chart.ppm"                       # YCbCr 4:2:0, JFIF
cjpeg -quality 90 -progressive -outfile "$out/jpeg-progressive.jpg" "$tmp/chart.ppm"       # SOF2
cjpeg -quality 90 -grayscale -outfile "$out/jpeg-gray.jpg" "$tmp/chart.ppm"                # 1 component
cjpeg -quality 90 -rgb -outfile "$out/jpeg-rgb.jpg" "$tmp/chart.ppm"                       # 3 components, Adobe transform 0 (no YCbCr)
cjpeg -quality 90 -arithmetic -outfile "$out/jpeg-arithmetic.jpg" "$tmp/chart.ppm"         # SOF9: jpeg-js cannot decode it
# ImageMagick writes CMYK as YCCK (libjpeg's default for CMYK input): 4 components, Adobe APP14 transform 2
"$IM" "$tmp/chart.png" -colorspace CMYK -quality 90 "$out/jpeg-ycck.jpg"

# ---- PNG flavours PIL cannot write --------------------------------------------------------------------------
# (force the colour type, or ImageMagick "optimises" the chart into a palette image; drop date/colour chunks
# so that re-running the script gives byte-identical files)
png_opts=(-define png:exclude-chunks=gAMA,cHRM,bKGD,date,time,tEXt)
"$IM" "$tmp/chart.png" "${png_opts[@]}" -define png:color-type=2 -define png:bit-depth=16 "$out/png-rgb16.png"  # 16-bit RGB
"$IM" "$tmp/chart.png" "${png_opts[@]}" -define png:color-type=2 -define png:bit-depth=8 -interlace PNG "$out/png-interlaced.png"  # Adam7

if command -v exiftool >/dev/null; then
  echo "EXIF orientation as exiftool reads it:"
  exiftool -q -s3 -n -p '$FileName $Orientation' "$out"/orient-*.jpg "$out/png-exif-6.png"
fi
ls -l "$out"
