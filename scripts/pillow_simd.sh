#!/usr/bin/env bash
# Replace Pillow with pillow-simd (SIMD resampling and colour conversion) in the active
# virtualenv. pillow-simd has no wheels: it builds from source against Debian's libjpeg,
# zlib, libwebp, libtiff, OpenJPEG and LittleCMS dev packages, installed here when missing
# (stock Pillow's wheels read LZW and Deflate TIFFs and JPEG 2000, and convert colour
# profiles: a build without those could not; thumbnails of CMYK and wide-gamut pictures
# need the last). The wheel is kept in .cache/wheels so a rebuilt virtualenv does not compile
# it again (pip's own cache is not used: its wheel may predate a library). Exit non-zero
# (and leave Pillow in place) when it cannot be built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=${PILLOW_SIMD_VERSION:-12.1.1.post0}
# Named by the libraries it is built with: a wheel built before one was added is not reused.
WHEELS=.cache/wheels/jpeg-zlib-webp-tiff-jp2-lcms
mkdir -p "$WHEELS"

need=()
for pkg in libjpeg62-turbo-dev zlib1g-dev libwebp-dev libtiff-dev libopenjp2-7-dev liblcms2-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        echo "pillow-simd: needs ${need[*]} (run as root, or install them)" >&2
        exit 1
    fi
    echo "pillow-simd: installing ${need[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

wheel=$(ls "$WHEELS"/pillow_simd-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
    echo "pillow-simd: building $VERSION (about 30 s)" >&2
    flags=""
    grep -qw avx2 /proc/cpuinfo && flags="-mavx2"
    CC="cc $flags" python -m pip wheel -q --no-cache-dir --no-deps --no-binary pillow-simd -w "$WHEELS" "pillow-simd==$VERSION" >&2
    wheel=$(ls "$WHEELS"/pillow_simd-"$VERSION"-*.whl | head -n1)
fi
python -m pip uninstall -q -y pillow >/dev/null 2>&1 || true
python -m pip install -q --force-reinstall --no-deps "$wheel"
python -c "from PIL import features; assert all(features.check(f) for f in ('jpg', 'webp', 'libtiff', 'jpg_2000', 'littlecms2'))" \
    || { echo "pillow-simd: built without JPEG, WebP, libtiff, OpenJPEG or LittleCMS; going back to Pillow" >&2
         python -m pip install -q --force-reinstall -c scripts/constraints.txt "pillow>=10"; exit 1; }
echo "pillow-simd: $(python -c 'import PIL; print(PIL.__version__)') installed" >&2
