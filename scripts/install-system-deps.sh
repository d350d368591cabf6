#!/usr/bin/env bash
# Debian packages medlens uses in tests and benchmarks: tesseract (the de-identification
# benchmark's attacker), espeak-ng (synthesised speech for the spoken-question test), chromium
# (web page test), Orthanc with its DICOMweb plug-in (the real PACS of the interop tests) and
# dicom3tools (dciodvfy, the IOD checker run on the SR and SEG medlens writes).
# Installs only what is missing, and only when it can (root with apt-get); otherwise it says
# what to install and the features that need it report themselves unavailable.
set -euo pipefail
need=()
command -v tesseract >/dev/null || need+=(tesseract-ocr tesseract-ocr-eng)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v chromium >/dev/null || need+=(chromium)
command -v Orthanc >/dev/null || need+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || need+=(orthanc-dicomweb)
command -v dciodvfy >/dev/null || need+=(dicom3tools)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "medlens: optional system packages missing: ${need[*]} (install them with apt-get)." >&2
fi
