"""Faces followed across a video's frames by the overlap of their boxes, so that one person keeps one id.

Greedy IoU matching: each frame's boxes are paired with the tracks seen in the last ``max_gap_s`` seconds, the most
overlapping pair first, while the overlap is at least ``min_iou``; a box left unpaired starts a new track. Enough for
faces that move less than about half their width between sampled frames and do not cross each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_store.preprocess import Box


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    return overlap / (aw * ah + bw * bh - overlap)


@dataclass
class _Track:
    box: Box
    seen_s: float


class IouTracker:
    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        self.min_iou = min_iou
        self.max_gap_s = max_gap_s
        self._tracks: dict[int, _Track] = {}
        self._next_id = 1

    def assign(self, boxes: list[Box], time_s: float) -> list[int]:
        """A track id for each box of the frame at `time_s`, in the order of `boxes`."""
        live = {tid: track for tid, track in self._tracks.items() if time_s - track.seen_s <= self.max_gap_s}
        pairs = sorted(
            ((iou(track.box, box), tid, index) for tid, track in live.items() for index, box in enumerate(boxes)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, tid, index in pairs:
            if overlap < self.min_iou:
                break
            if tid not in taken and ids[index] is None:
                ids[index] = tid
                taken.add(tid)
        assigned = []
        for index, box in enumerate(boxes):
            tid = ids[index]
            if tid is None:
                tid, self._next_id = self._next_id, self._next_id + 1
            live[tid] = _Track(box, time_s)
            assigned.append(tid)
        self._tracks = live
        return assigned
