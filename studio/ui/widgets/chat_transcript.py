"""The conversation as the user reads it: a QTextBrowser with each message's markdown rendered,
attachment thumbnails, and small links per message (copy; edit the last question; regenerate the
last answer). Rebuilt from the messages at most ~10 times a second while an answer streams.

Raw HTML in answers is shown as text (Qt's MarkdownNoHTML), so a model's `<point ...>` tag or a
stray `<script>` is visible rather than interpreted.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import (QColor, QImage, QTextBlockFormat, QTextCharFormat, QTextCursor, QTextDocument,
                           QTextImageFormat)
from PySide6.QtWidgets import QTextBrowser

from studio.ui.convert import array_to_qimage

THUMB_SIDE = 160
MARKDOWN = QTextDocument.MarkdownFeature(QTextDocument.MarkdownFeature.MarkdownDialectGitHub.value
                                         | QTextDocument.MarkdownFeature.MarkdownNoHTML.value)
ROLE_COLOURS = {"user": "#7fb3ff", "assistant": "#9be29b"}


def thumbnail(pixels: np.ndarray, side: int = THUMB_SIDE) -> QImage:
    img = array_to_qimage(pixels)
    if max(img.width(), img.height()) > side:
        from PySide6.QtCore import Qt

        img = img.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return img


class ChatTranscript(QTextBrowser):
    # (action, message id): "copy", "edit", "regenerate"
    action = Signal(str, str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("chat.transcript")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self._thumbs: dict[str, QImage] = {}
        self._placeholder = ""

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == "chat":
            kind, _, mid = url.path().partition("/")
            self.action.emit(kind, mid)

    def _thumb(self, att) -> QImage | None:
        if att is None or att.image is None:
            return None
        if att.image_id not in self._thumbs:
            if len(self._thumbs) > 256:
                self._thumbs.clear()
            self._thumbs[att.image_id] = thumbnail(att.image.rgb())
        return self._thumbs[att.image_id]

    def show_messages(self, messages, placeholder: str = "") -> None:
        bar = self.verticalScrollBar()
        follow = bar.value() >= bar.maximum() - 8  # keep following the answer unless the user scrolled up
        doc = self.document()
        doc.clear()
        doc.setDefaultStyleSheet("a { color: #9aa0a6; text-decoration: none; }")
        cursor = QTextCursor(doc)
        if not messages:
            cursor.insertHtml(f"<p style='color:#8a8a92'>{html.escape(placeholder)}</p>")
        last_user = next((m.id for m in reversed(messages) if m.role == "user"), "")
        last_reply = next((m.id for m in reversed(messages) if m.role == "assistant"), "")
        gap = QTextBlockFormat()
        gap.setTopMargin(12)
        for i, m in enumerate(messages):
            if i:
                cursor.insertBlock(gap, QTextCharFormat())
            self._header(cursor, m, m.id == last_user, m.id == last_reply)
            thumb = self._thumb(m.attachment)
            if thumb is not None:
                name = f"chatimg://{m.attachment.image_id}"
                doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl(name), thumb)
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                fmt = QTextImageFormat()
                fmt.setName(name)
                fmt.setWidth(thumb.width())
                fmt.setHeight(thumb.height())
                cursor.insertImage(fmt)
                cursor.insertText(f"  {m.attachment.describe()}", _muted())
            elif m.attachment is not None:
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                cursor.insertText(f"[{m.attachment.describe()}: not available]", _muted())
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
            body = m.text
            if m.streaming:
                body = (body + " ▍") if body else "*…*"
            elif not body.strip():
                body = "*(no text)*"
            cursor.insertMarkdown(body, MARKDOWN)
            if m.stopped:
                cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
                cursor.insertText("— stopped", _muted(italic=True))
        _wrap_code(doc)
        if follow:
            bar.setValue(bar.maximum())

    def _header(self, cursor: QTextCursor, m, last_user: bool, last_reply: bool) -> None:
        who = "You" if m.role == "user" else "Assistant"
        links = [f"<a href='chat:copy/{m.id}'>copy</a>"]
        if last_user and m.role == "user":
            links.append(f"<a href='chat:edit/{m.id}'>edit</a>")
        if last_reply and m.role == "assistant" and not m.streaming:
            links.append(f"<a href='chat:regenerate/{m.id}'>regenerate</a>")
        extra = ""
        if m.role == "assistant" and m.model_id:
            extra = f" <span style='color:#8a8a92'>· {html.escape(m.model_id)}"
            if m.tokens and not m.streaming:
                extra += f" · {m.tokens} tokens"
            extra += "</span>"
        cursor.insertHtml(f"<b style='color:{ROLE_COLOURS[m.role]}'>{who}</b>{extra}"
                          f"&nbsp;&nbsp;<small>{' · '.join(links)}</small>")
        cursor.setCharFormat(QTextCharFormat())


def _wrap_code(doc: QTextDocument) -> None:
    """Let code blocks wrap: a long JSON line would otherwise widen the whole dock."""
    block = doc.begin()
    cursor = QTextCursor(doc)
    while block.isValid():
        if block.blockFormat().nonBreakableLines():
            fmt = block.blockFormat()
            fmt.setNonBreakableLines(False)
            cursor.setPosition(block.position())
            cursor.setBlockFormat(fmt)
        block = block.next()


def _muted(italic: bool = False) -> QTextCharFormat:
    fmt = QTextCharFormat()
    fmt.setForeground(QColor(138, 138, 146))
    fmt.setFontItalic(italic)
    return fmt
