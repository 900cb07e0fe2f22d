"""Conversions between numpy RGB(A) arrays and Qt images (copies, so numpy memory can be freed)."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def array_to_qimage(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_Grayscale8).copy()
    if arr.shape[2] == 4:
        return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGBA8888).copy()
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()


def array_to_pixmap(arr: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(array_to_qimage(arr))


def qimage_to_array(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, count=img.sizeInBytes()).reshape(h, img.bytesPerLine())
    return arr[:, : w * 4].reshape(h, w, 4).copy()
