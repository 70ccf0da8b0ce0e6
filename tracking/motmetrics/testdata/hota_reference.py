#!/usr/bin/env python3
"""Reference HOTA for the Go tests: a port of TrackEval's HOTA metric.

Usage: python3 hota_reference.py GT.txt RES.txt
Prints HOTA, DetA, AssA and LocA averaged over alpha = np.arange(0.05, 0.99, 0.05).

eval_sequence below is copied from TrackEval, trackeval/metrics/hota.py
(HOTA.eval_sequence and _compute_final_fields), and box_ious from
trackeval/datasets/_base_dataset.py (_calculate_box_ious, xywh). Loading
mirrors trackeval/datasets/mot_challenge_2d_box.py for MOT15 (no classes,
no distractor removal): ground truth rows with conf ("zero_marked") 0 are
dropped, tracker rows are all kept, ids are remapped to 0..n-1.

TrackEval licence:

MIT License

Copyright (c) 2020 Jonathon Luiten

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
import sys
from copy import deepcopy

import numpy as np
from scipy.optimize import linear_sum_assignment

ALPHAS = np.arange(0.05, 0.99, 0.05)


def box_ious(bboxes1, bboxes2):
    bboxes1 = deepcopy(bboxes1)
    bboxes2 = deepcopy(bboxes2)
    bboxes1[:, 2] = bboxes1[:, 0] + bboxes1[:, 2]
    bboxes1[:, 3] = bboxes1[:, 1] + bboxes1[:, 3]
    bboxes2[:, 2] = bboxes2[:, 0] + bboxes2[:, 2]
    bboxes2[:, 3] = bboxes2[:, 1] + bboxes2[:, 3]
    min_ = np.minimum(bboxes1[:, np.newaxis, :], bboxes2[np.newaxis, :, :])
    max_ = np.maximum(bboxes1[:, np.newaxis, :], bboxes2[np.newaxis, :, :])
    intersection = np.maximum(min_[..., 2] - max_[..., 0], 0) * np.maximum(min_[..., 3] - max_[..., 1], 0)
    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])
    union = area1[:, np.newaxis] + area2[np.newaxis, :] - intersection
    intersection[area1 <= 0 + np.finfo('float').eps, :] = 0
    intersection[:, area2 <= 0 + np.finfo('float').eps] = 0
    intersection[union <= 0 + np.finfo('float').eps] = 0
    union[union <= 0 + np.finfo('float').eps] = 1
    return intersection / union


def load(path, is_gt):
    rows = {}
    for line in open(path):
        f = line.strip().replace(' ', ',').split(',')
        f = [x for x in f if x != '']
        if not f:
            continue
        if is_gt and float(f[6]) == 0:
            continue
        rows.setdefault(int(float(f[0])), []).append((int(float(f[1])), [float(x) for x in f[2:6]]))
    return rows


def prepare(gt_path, res_path):
    gt, tr = load(gt_path, True), load(res_path, False)
    frames = sorted(set(gt) | set(tr))
    gmap, tmap = {}, {}
    data = {'gt_ids': [], 'tracker_ids': [], 'similarity_scores': []}
    for t in frames:
        g = gt.get(t, [])
        r = tr.get(t, [])
        gids = np.array([gmap.setdefault(i, len(gmap)) for i, _ in g], dtype=int)
        tids = np.array([tmap.setdefault(i, len(tmap)) for i, _ in r], dtype=int)
        gb = np.array([b for _, b in g], dtype=float).reshape(-1, 4)
        tb = np.array([b for _, b in r], dtype=float).reshape(-1, 4)
        data['gt_ids'].append(gids)
        data['tracker_ids'].append(tids)
        data['similarity_scores'].append(box_ious(gb, tb))
    data['num_gt_ids'] = len(gmap)
    data['num_tracker_ids'] = len(tmap)
    data['num_gt_dets'] = sum(len(x) for x in data['gt_ids'])
    data['num_tracker_dets'] = sum(len(x) for x in data['tracker_ids'])
    return data


def compute_final_fields(res):
    res['DetRe'] = res['HOTA_TP'] / np.maximum(1, res['HOTA_TP'] + res['HOTA_FN'])
    res['DetPr'] = res['HOTA_TP'] / np.maximum(1, res['HOTA_TP'] + res['HOTA_FP'])
    res['DetA'] = res['HOTA_TP'] / np.maximum(1, res['HOTA_TP'] + res['HOTA_FN'] + res['HOTA_FP'])
    res['HOTA'] = np.sqrt(res['DetA'] * res['AssA'])
    return res


def eval_sequence(data):
    res = {}
    for field in ['HOTA', 'DetA', 'AssA', 'DetRe', 'DetPr', 'AssRe', 'AssPr', 'LocA', 'HOTA_TP', 'HOTA_FN', 'HOTA_FP']:
        res[field] = np.zeros((len(ALPHAS)), dtype=float)
    if data['num_tracker_dets'] == 0:
        res['HOTA_FN'] = data['num_gt_dets'] * np.ones((len(ALPHAS)), dtype=float)
        res['LocA'] = np.ones((len(ALPHAS)), dtype=float)
        return compute_final_fields(res)
    if data['num_gt_dets'] == 0:
        res['HOTA_FP'] = data['num_tracker_dets'] * np.ones((len(ALPHAS)), dtype=float)
        res['LocA'] = np.ones((len(ALPHAS)), dtype=float)
        return compute_final_fields(res)

    potential_matches_count = np.zeros((data['num_gt_ids'], data['num_tracker_ids']))
    gt_id_count = np.zeros((data['num_gt_ids'], 1))
    tracker_id_count = np.zeros((1, data['num_tracker_ids']))
    for t, (gt_ids_t, tracker_ids_t) in enumerate(zip(data['gt_ids'], data['tracker_ids'])):
        similarity = data['similarity_scores'][t]
        sim_iou_denom = similarity.sum(0)[np.newaxis, :] + similarity.sum(1)[:, np.newaxis] - similarity
        sim_iou = np.zeros_like(similarity)
        sim_iou_mask = sim_iou_denom > 0 + np.finfo('float').eps
        sim_iou[sim_iou_mask] = similarity[sim_iou_mask] / sim_iou_denom[sim_iou_mask]
        potential_matches_count[gt_ids_t[:, np.newaxis], tracker_ids_t[np.newaxis, :]] += sim_iou
        gt_id_count[gt_ids_t] += 1
        tracker_id_count[0, tracker_ids_t] += 1

    global_alignment_score = potential_matches_count / (gt_id_count + tracker_id_count - potential_matches_count)
    matches_counts = [np.zeros_like(potential_matches_count) for _ in ALPHAS]

    for t, (gt_ids_t, tracker_ids_t) in enumerate(zip(data['gt_ids'], data['tracker_ids'])):
        if len(gt_ids_t) == 0:
            for a, alpha in enumerate(ALPHAS):
                res['HOTA_FP'][a] += len(tracker_ids_t)
            continue
        if len(tracker_ids_t) == 0:
            for a, alpha in enumerate(ALPHAS):
                res['HOTA_FN'][a] += len(gt_ids_t)
            continue
        similarity = data['similarity_scores'][t]
        score_mat = global_alignment_score[gt_ids_t[:, np.newaxis], tracker_ids_t[np.newaxis, :]] * similarity
        match_rows, match_cols = linear_sum_assignment(-score_mat)
        for a, alpha in enumerate(ALPHAS):
            actually_matched_mask = similarity[match_rows, match_cols] >= alpha - np.finfo('float').eps
            alpha_match_rows = match_rows[actually_matched_mask]
            alpha_match_cols = match_cols[actually_matched_mask]
            num_matches = len(alpha_match_rows)
            res['HOTA_TP'][a] += num_matches
            res['HOTA_FN'][a] += len(gt_ids_t) - num_matches
            res['HOTA_FP'][a] += len(tracker_ids_t) - num_matches
            if num_matches > 0:
                res['LocA'][a] += sum(similarity[alpha_match_rows, alpha_match_cols])
                matches_counts[a][gt_ids_t[alpha_match_rows], tracker_ids_t[alpha_match_cols]] += 1

    for a, alpha in enumerate(ALPHAS):
        matches_count = matches_counts[a]
        ass_a = matches_count / np.maximum(1, gt_id_count + tracker_id_count - matches_count)
        res['AssA'][a] = np.sum(matches_count * ass_a) / np.maximum(1, res['HOTA_TP'][a])
    res['LocA'] = np.maximum(1e-10, res['LocA']) / np.maximum(1e-10, res['HOTA_TP'])
    return compute_final_fields(res)


if __name__ == '__main__':
    r = eval_sequence(prepare(sys.argv[1], sys.argv[2]))
    for k in ['HOTA', 'DetA', 'AssA', 'LocA']:
        print('%s %.17g' % (k, r[k].mean()))
