#!/usr/bin/python3
# Reference numbers for package cocoeval's tests, made with pycocotools'
# own algorithm: this file is pycocotools' COCO.loadRes / annToRLE and
# COCOeval (evaluate, accumulate, summarize) from cocodataset/cocoapi
# PythonAPI/pycocotools (coco.py, cocoeval.py, mask.py), cut down to what
# the tests use and otherwise unchanged, with its C mask API (maskApi.c in
# this folder, unchanged) called through ctypes in place of the Cython
# wrapper _mask.pyx. pycocotools itself cannot be installed here (no PyPI).
#
# Microsoft COCO Toolbox.      version 2.0
# Code written by Piotr Dollar and Tsung-Yi Lin, 2015.
# Licensed under the Simplified BSD License [see LICENSE-cocoapi.txt]
#
# Run (needs python3-numpy and gcc):
#   gcc -O2 -shared -fPIC -o /tmp/libmaskapi.so maskApi.c
#   /usr/bin/python3 reference.py /tmp/libmaskapi.so ../../../../../shared/data/coco
import ctypes as C
import json
import sys
from collections import defaultdict

import numpy as np

lib = C.CDLL(sys.argv[1])
DATA = sys.argv[2]


class RLE(C.Structure):
    _fields_ = [('h', C.c_ulong), ('w', C.c_ulong), ('m', C.c_ulong), ('cnts', C.POINTER(C.c_uint))]


lib.rleToString.restype = C.c_void_p
libc = C.CDLL(None)
libc.free.argtypes = [C.c_void_p]


# ---- mask.py / _mask.pyx equivalents ----
def _toString(Rs):
    out = []
    for R in Rs:
        p = lib.rleToString(C.byref(R))
        s = C.string_at(p)
        libc.free(p)
        out.append({'size': [R.h, R.w], 'counts': s})
    return out


def _frString(objs):
    Rs = (RLE * len(objs))()
    for i, obj in enumerate(objs):
        s = str.encode(obj['counts']) if type(obj['counts']) == str else obj['counts']
        lib.rleFrString(C.byref(Rs[i]), C.c_char_p(s), C.c_ulong(obj['size'][0]), C.c_ulong(obj['size'][1]))
    return Rs


def frPoly(poly, h, w):
    Rs = (RLE * len(poly))()
    for i, p in enumerate(poly):
        a = np.array(p, dtype=np.double)
        lib.rleFrPoly(C.byref(Rs[i]), a.ctypes.data_as(C.POINTER(C.c_double)), C.c_ulong(int(len(p) / 2)),
                      C.c_ulong(h), C.c_ulong(w))
    return _toString(Rs)


def frBbox(bb, h, w):
    bb = np.array(bb, dtype=np.double).reshape(-1, 4)
    polys = []
    for b in bb:
        xs, ys = b[0], b[1]
        xe, ye = xs + b[2], ys + b[3]
        polys.append([xs, ys, xs, ye, xe, ye, xe, ys])
    return frPoly(polys, h, w)


def frUncompressedRLE(ucRles, h, w):
    objs = []
    for r in ucRles:
        cnts = np.array(r['counts'], dtype=np.uint32)
        R = RLE()
        arr = (C.c_uint * len(cnts))(*cnts.tolist())
        lib.rleInit(C.byref(R), C.c_ulong(r['size'][0]), C.c_ulong(r['size'][1]), C.c_ulong(len(cnts)), arr)
        objs.append(_toString([R])[0])
    return objs


def frPyObjects(pyobj, h, w):
    if type(pyobj) == np.ndarray:
        objs = frBbox(pyobj, h, w)
    elif type(pyobj) == list and len(pyobj[0]) == 4:
        objs = frBbox(pyobj, h, w)
    elif type(pyobj) == list and len(pyobj[0]) > 4:
        objs = frPoly(pyobj, h, w)
    elif type(pyobj) == dict and 'counts' in pyobj and 'size' in pyobj:
        objs = frUncompressedRLE([pyobj], h, w)[0]
    else:
        raise Exception('input type is not supported.')
    return objs


def merge(rleObjs, intersect=0):
    Rs = _frString(rleObjs)
    R = RLE()
    lib.rleMerge(Rs, C.byref(R), C.c_ulong(len(rleObjs)), C.c_int(intersect))
    return _toString([R])[0]


def area(rleObjs):
    single = type(rleObjs) == dict
    objs = [rleObjs] if single else rleObjs
    Rs = _frString(objs)
    a = (C.c_uint * len(objs))()
    lib.rleArea(Rs, C.c_ulong(len(objs)), a)
    return a[0] if single else list(a)


def toBbox(rleObjs):
    single = type(rleObjs) == dict
    objs = [rleObjs] if single else rleObjs
    Rs = _frString(objs)
    bb = np.zeros(4 * len(objs), dtype=np.double)
    lib.rleToBbox(Rs, bb.ctypes.data_as(C.POINTER(C.c_double)), C.c_ulong(len(objs)))
    bb = bb.reshape((len(objs), 4))
    return bb[0] if single else bb


def iou(dt, gt, pyiscrowd):
    def _preproc(objs):
        if len(objs) == 0:
            return objs
        isbox = np.all(np.array([(len(obj) == 4) and ((type(obj) == list) or (type(obj) == np.ndarray)) for obj in objs]))
        isrle = np.all(np.array([type(obj) == dict for obj in objs]))
        if isbox:
            objs = np.array(objs, dtype=np.double)
            if len(objs.shape) == 1:
                objs = objs.reshape((1, objs.shape[0]))
        elif isrle:
            objs = _frString(objs)
        else:
            raise Exception('list input can be boxes (Nx4) or RLEs ([RLE])')
        return objs
    iscrowd = np.array(pyiscrowd, dtype=np.uint8)
    dt = _preproc(dt)
    gt = _preproc(gt)
    m, n = len(dt), len(gt)
    if m == 0 or n == 0:
        return []
    o = np.zeros(m * n, dtype=np.double)
    op = o.ctypes.data_as(C.POINTER(C.c_double))
    ip = iscrowd.ctypes.data_as(C.POINTER(C.c_ubyte))
    if type(dt) == np.ndarray:
        dt = np.ascontiguousarray(dt)
        gt = np.ascontiguousarray(gt)
        lib.bbIou(dt.ctypes.data_as(C.POINTER(C.c_double)), gt.ctypes.data_as(C.POINTER(C.c_double)),
                  C.c_ulong(m), C.c_ulong(n), ip, op)
    else:
        lib.rleIou(dt, gt, C.c_ulong(m), C.c_ulong(n), ip, op)
    return o.reshape((m, n), order='F')


# ---- coco.py ----
class COCO:
    def __init__(self, dataset=None):
        self.dataset = dataset or {}
        if dataset is not None:
            self.createIndex()

    def createIndex(self):
        anns, cats, imgs = {}, {}, {}
        imgToAnns = defaultdict(list)
        for ann in self.dataset.get('annotations', []):
            imgToAnns[ann['image_id']].append(ann)
            anns[ann['id']] = ann
        for img in self.dataset.get('images', []):
            imgs[img['id']] = img
        for cat in self.dataset.get('categories', []):
            cats[cat['id']] = cat
        self.anns, self.imgToAnns, self.imgs, self.cats = anns, imgToAnns, imgs, cats

    def getAnnIds(self, imgIds=[], catIds=[]):
        lists = [self.imgToAnns[imgId] for imgId in imgIds if imgId in self.imgToAnns]
        anns = [a for l in lists for a in l]
        anns = anns if len(catIds) == 0 else [ann for ann in anns if ann['category_id'] in catIds]
        return [ann['id'] for ann in anns]

    def loadAnns(self, ids):
        return [self.anns[id] for id in ids]

    def getImgIds(self):
        return list(self.imgs.keys())

    def getCatIds(self):
        return [cat['id'] for cat in self.dataset['categories']]

    def loadRes(self, anns):
        res = COCO()
        res.dataset['images'] = [img for img in self.dataset['images']]
        annsImgIds = [ann['image_id'] for ann in anns]
        assert set(annsImgIds) == (set(annsImgIds) & set(self.getImgIds())), \
            'Results do not correspond to current coco set'
        if 'bbox' in anns[0] and not anns[0]['bbox'] == []:
            for id, ann in enumerate(anns):
                bb = ann['bbox']
                x1, x2, y1, y2 = [bb[0], bb[0] + bb[2], bb[1], bb[1] + bb[3]]
                if not 'segmentation' in ann:
                    ann['segmentation'] = [[x1, y1, x1, y2, x2, y2, x2, y1]]
                ann['area'] = bb[2] * bb[3]
                ann['id'] = id + 1
                ann['iscrowd'] = 0
        elif 'segmentation' in anns[0]:
            for id, ann in enumerate(anns):
                ann['area'] = area(ann['segmentation'])
                if not 'bbox' in ann:
                    ann['bbox'] = toBbox(ann['segmentation'])
                ann['id'] = id + 1
                ann['iscrowd'] = 0
        elif 'keypoints' in anns[0]:
            for id, ann in enumerate(anns):
                s = ann['keypoints']
                x = s[0::3]
                y = s[1::3]
                x0, x1, y0, y1 = np.min(x), np.max(x), np.min(y), np.max(y)
                ann['area'] = (x1 - x0) * (y1 - y0)
                ann['id'] = id + 1
                ann['bbox'] = [x0, y0, x1 - x0, y1 - y0]
        res.dataset['annotations'] = anns
        res.createIndex()
        return res

    def annToRLE(self, ann):
        t = self.imgs[ann['image_id']]
        h, w = t['height'], t['width']
        segm = ann['segmentation']
        if type(segm) == list:
            rles = frPyObjects(segm, h, w)
            rle = merge(rles)
        elif type(segm['counts']) == list:
            rle = frPyObjects(segm, h, w)
        else:
            rle = ann['segmentation']
        return rle


# ---- cocoeval.py (canonical defaults: maxDets [1,10,100], linspace iouThrs) ----
class Params:
    def __init__(self, iouType):
        self.imgIds = []
        self.catIds = []
        self.iouThrs = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
        self.recThrs = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
        if iouType == 'keypoints':
            self.maxDets = [20]
            self.areaRng = [[0 ** 2, 1e5 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]
            self.areaRngLbl = ['all', 'medium', 'large']
            self.kpt_oks_sigmas = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
        else:
            self.maxDets = [1, 10, 100]
            self.areaRng = [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]]
            self.areaRngLbl = ['all', 'small', 'medium', 'large']
        self.useCats = 1
        self.iouType = iouType


class COCOeval:
    def __init__(self, cocoGt, cocoDt, iouType):
        self.cocoGt, self.cocoDt = cocoGt, cocoDt
        self.params = Params(iouType)
        self.params.imgIds = sorted(cocoGt.getImgIds())
        self.params.catIds = sorted(cocoGt.getCatIds())

    def _prepare(self):
        def _toMask(anns, coco):
            for ann in anns:
                ann['segmentation'] = coco.annToRLE(ann)
        p = self.params
        gts = self.cocoGt.loadAnns(self.cocoGt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
        dts = self.cocoDt.loadAnns(self.cocoDt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
        if p.iouType == 'segm':
            _toMask(gts, self.cocoGt)
            _toMask(dts, self.cocoDt)
        for gt in gts:
            gt['ignore'] = gt['ignore'] if 'ignore' in gt else 0
            gt['ignore'] = 'iscrowd' in gt and gt['iscrowd']
            if p.iouType == 'keypoints':
                gt['ignore'] = (gt['num_keypoints'] == 0) or gt['ignore']
        self._gts = defaultdict(list)
        self._dts = defaultdict(list)
        for gt in gts:
            self._gts[gt['image_id'], gt['category_id']].append(gt)
        for dt in dts:
            self._dts[dt['image_id'], dt['category_id']].append(dt)

    def evaluate(self):
        p = self.params
        p.imgIds = list(np.unique(p.imgIds))
        p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self._prepare()
        catIds = p.catIds
        computeIoU = self.computeOks if p.iouType == 'keypoints' else self.computeIoU
        self.ious = {(imgId, catId): computeIoU(imgId, catId) for imgId in p.imgIds for catId in catIds}
        maxDet = p.maxDets[-1]
        self.evalImgs = [self.evaluateImg(imgId, catId, areaRng, maxDet)
                         for catId in catIds for areaRng in p.areaRng for imgId in p.imgIds]

    def computeIoU(self, imgId, catId):
        p = self.params
        gt = self._gts[imgId, catId]
        dt = self._dts[imgId, catId]
        if len(gt) == 0 and len(dt) == 0:
            return []
        inds = np.argsort([-d['score'] for d in dt], kind='mergesort')
        dt = [dt[i] for i in inds]
        if len(dt) > p.maxDets[-1]:
            dt = dt[0:p.maxDets[-1]]
        if p.iouType == 'segm':
            g = [g['segmentation'] for g in gt]
            d = [d['segmentation'] for d in dt]
        else:
            g = [g['bbox'] for g in gt]
            d = [d['bbox'] for d in dt]
        iscrowd = [int(o['iscrowd']) for o in gt]
        return iou(d, g, iscrowd)

    def computeOks(self, imgId, catId):
        p = self.params
        gts = self._gts[imgId, catId]
        dts = self._dts[imgId, catId]
        inds = np.argsort([-d['score'] for d in dts], kind='mergesort')
        dts = [dts[i] for i in inds]
        if len(dts) > p.maxDets[-1]:
            dts = dts[0:p.maxDets[-1]]
        if len(gts) == 0 or len(dts) == 0:
            return []
        ious = np.zeros((len(dts), len(gts)))
        sigmas = p.kpt_oks_sigmas
        vars = (sigmas * 2) ** 2
        k = len(sigmas)
        for j, gt in enumerate(gts):
            g = np.array(gt['keypoints'])
            xg = g[0::3]; yg = g[1::3]; vg = g[2::3]
            k1 = np.count_nonzero(vg > 0)
            bb = gt['bbox']
            x0 = bb[0] - bb[2]; x1 = bb[0] + bb[2] * 2
            y0 = bb[1] - bb[3]; y1 = bb[1] + bb[3] * 2
            for i, dt in enumerate(dts):
                d = np.array(dt['keypoints'])
                xd = d[0::3]; yd = d[1::3]
                if k1 > 0:
                    dx = xd - xg
                    dy = yd - yg
                else:
                    z = np.zeros((k))
                    dx = np.max((z, x0 - xd), axis=0) + np.max((z, xd - x1), axis=0)
                    dy = np.max((z, y0 - yd), axis=0) + np.max((z, yd - y1), axis=0)
                e = (dx ** 2 + dy ** 2) / vars / (gt['area'] + np.spacing(1)) / 2
                if k1 > 0:
                    e = e[vg > 0]
                ious[i, j] = np.sum(np.exp(-e)) / e.shape[0]
        return ious

    def evaluateImg(self, imgId, catId, aRng, maxDet):
        p = self.params
        gt = self._gts[imgId, catId]
        dt = self._dts[imgId, catId]
        if len(gt) == 0 and len(dt) == 0:
            return None
        for g in gt:
            if g['ignore'] or (g['area'] < aRng[0] or g['area'] > aRng[1]):
                g['_ignore'] = 1
            else:
                g['_ignore'] = 0
        gtind = np.argsort([g['_ignore'] for g in gt], kind='mergesort')
        gt = [gt[i] for i in gtind]
        dtind = np.argsort([-d['score'] for d in dt], kind='mergesort')
        dt = [dt[i] for i in dtind[0:maxDet]]
        iscrowd = [int(o['iscrowd']) for o in gt]
        ious = self.ious[imgId, catId][:, gtind] if len(self.ious[imgId, catId]) > 0 else self.ious[imgId, catId]
        T = len(p.iouThrs)
        G = len(gt)
        D = len(dt)
        gtm = np.zeros((T, G))
        dtm = np.zeros((T, D))
        gtIg = np.array([g['_ignore'] for g in gt])
        dtIg = np.zeros((T, D))
        if not len(ious) == 0:
            for tind, t in enumerate(p.iouThrs):
                for dind, d in enumerate(dt):
                    iou_ = min([t, 1 - 1e-10])
                    m = -1
                    for gind, g in enumerate(gt):
                        if gtm[tind, gind] > 0 and not iscrowd[gind]:
                            continue
                        if m > -1 and gtIg[m] == 0 and gtIg[gind] == 1:
                            break
                        if ious[dind, gind] < iou_:
                            continue
                        iou_ = ious[dind, gind]
                        m = gind
                    if m == -1:
                        continue
                    dtIg[tind, dind] = gtIg[m]
                    dtm[tind, dind] = gt[m]['id']
                    gtm[tind, m] = d['id']
        a = np.array([d['area'] < aRng[0] or d['area'] > aRng[1] for d in dt]).reshape((1, len(dt)))
        dtIg = np.logical_or(dtIg, np.logical_and(dtm == 0, np.repeat(a, T, 0)))
        return {'dtMatches': dtm, 'dtScores': [d['score'] for d in dt], 'gtIgnore': gtIg, 'dtIgnore': dtIg}

    def accumulate(self):
        p = self.params
        T = len(p.iouThrs)
        R = len(p.recThrs)
        K = len(p.catIds)
        A = len(p.areaRng)
        M = len(p.maxDets)
        precision = -np.ones((T, R, K, A, M))
        recall = -np.ones((T, K, A, M))
        I0 = len(p.imgIds)
        A0 = len(p.areaRng)
        for k in range(K):
            Nk = k * A0 * I0
            for a in range(A):
                Na = a * I0
                for m, maxDet in enumerate(p.maxDets):
                    E = [self.evalImgs[Nk + Na + i] for i in range(I0)]
                    E = [e for e in E if not e is None]
                    if len(E) == 0:
                        continue
                    dtScores = np.concatenate([e['dtScores'][0:maxDet] for e in E])
                    inds = np.argsort(-dtScores, kind='mergesort')
                    dtm = np.concatenate([e['dtMatches'][:, 0:maxDet] for e in E], axis=1)[:, inds]
                    dtIg = np.concatenate([e['dtIgnore'][:, 0:maxDet] for e in E], axis=1)[:, inds]
                    gtIg = np.concatenate([e['gtIgnore'] for e in E])
                    npig = np.count_nonzero(gtIg == 0)
                    if npig == 0:
                        continue
                    tps = np.logical_and(dtm, np.logical_not(dtIg))
                    fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtIg))
                    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
                    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
                    for t, (tp, fp) in enumerate(zip(tp_sum, fp_sum)):
                        tp = np.array(tp)
                        fp = np.array(fp)
                        nd = len(tp)
                        rc = tp / npig
                        pr = tp / (fp + tp + np.spacing(1))
                        q = np.zeros((R,))
                        recall[t, k, a, m] = rc[-1] if nd else 0
                        pr = pr.tolist(); q = q.tolist()
                        for i in range(nd - 1, 0, -1):
                            if pr[i] > pr[i - 1]:
                                pr[i - 1] = pr[i]
                        inds = np.searchsorted(rc, p.recThrs, side='left')
                        try:
                            for ri, pi in enumerate(inds):
                                q[ri] = pr[pi]
                        except:
                            pass
                        precision[t, :, k, a, m] = np.array(q)
        self.eval = {'precision': precision, 'recall': recall}

    def summarize(self):
        def _summarize(ap=1, iouThr=None, areaRng='all', maxDets=100):
            p = self.params
            aind = [i for i, aRng in enumerate(p.areaRngLbl) if aRng == areaRng]
            mind = [i for i, mDet in enumerate(p.maxDets) if mDet == maxDets]
            if ap == 1:
                s = self.eval['precision']
                if iouThr is not None:
                    t = np.where(iouThr == p.iouThrs)[0]
                    s = s[t]
                s = s[:, :, :, aind, mind]
            else:
                s = self.eval['recall']
                if iouThr is not None:
                    t = np.where(iouThr == p.iouThrs)[0]
                    s = s[t]
                s = s[:, :, aind, mind]
            if len(s[s > -1]) == 0:
                return -1
            return np.mean(s[s > -1])
        if self.params.iouType == 'keypoints':
            return [
                _summarize(1, maxDets=20),
                _summarize(1, maxDets=20, iouThr=.5),
                _summarize(1, maxDets=20, iouThr=.75),
                _summarize(1, maxDets=20, areaRng='medium'),
                _summarize(1, maxDets=20, areaRng='large'),
                _summarize(0, maxDets=20),
                _summarize(0, maxDets=20, iouThr=.5),
                _summarize(0, maxDets=20, iouThr=.75),
                _summarize(0, maxDets=20, areaRng='medium'),
                _summarize(0, maxDets=20, areaRng='large'),
            ]
        md = self.params.maxDets
        return [
            _summarize(1),
            _summarize(1, iouThr=.5, maxDets=md[2]),
            _summarize(1, iouThr=.75, maxDets=md[2]),
            _summarize(1, areaRng='small', maxDets=md[2]),
            _summarize(1, areaRng='medium', maxDets=md[2]),
            _summarize(1, areaRng='large', maxDets=md[2]),
            _summarize(0, maxDets=md[0]),
            _summarize(0, maxDets=md[1]),
            _summarize(0, maxDets=md[2]),
            _summarize(0, areaRng='small', maxDets=md[2]),
            _summarize(0, areaRng='medium', maxDets=md[2]),
            _summarize(0, areaRng='large', maxDets=md[2]),
        ]


def run(gtFile, dts, iouType):
    with open(gtFile) as f:
        gt = COCO(json.load(f))
    E = COCOeval(gt, gt.loadRes(dts), iouType)
    E.evaluate()
    E.accumulate()
    return E.summarize()


def show(name, stats):
    print(name + ':')
    print('  ' + ', '.join(repr(float(s)) for s in stats))


def load(name):
    with open(DATA + '/' + name) as f:
        return json.load(f)


gtFile = DATA + '/instances_val2014_100.json'
# 1. bbox on the fixture pair: must equal the values in shared/data/README.md.
show('bbox', run(gtFile, load('instances_val2014_fakebbox100_results.json'), 'bbox'))
# 2. segm with the same results file: loadRes takes its bbox branch and
#    gives each result its box as a polygon; GT polygons and crowd RLEs.
show('segm (bbox results as box polygons)', run(gtFile, load('instances_val2014_fakebbox100_results.json'), 'segm'))
# 3. segm with compressed-RLE results: each fake result's box rasterised
#    with frBbox at its image's size, sent as {"size","counts"} without a
#    bbox, so loadRes takes its segmentation branch (area and bbox from RLE).
with open(gtFile) as f:
    imgs = {im['id']: im for im in json.load(f)['images']}
segmRes = []
for r in load('instances_val2014_fakebbox100_results.json'):
    im = imgs[r['image_id']]
    rle = frBbox([r['bbox']], im['height'], im['width'])[0]
    segmRes.append({'image_id': r['image_id'], 'category_id': r['category_id'],
                    'segmentation': {'size': rle['size'], 'counts': rle['counts'].decode()}, 'score': r['score']})
show('segm (RLE results)', run(gtFile, segmRes, 'segm'))
# 4. keypoints (OKS) pair. Its results carry a bbox, so loadRes takes its
#    bbox branch: area = w*h of that box.
show('keypoints', run(DATA + '/keypoints_gt.json', load('keypoints_dt.json'), 'keypoints'))
# 5. keypoints with the results' bbox dropped, so loadRes takes its
#    keypoints branch: area and box from the extent of the keypoints.
kps = load('keypoints_dt.json')
for r in kps:
    del r['bbox']
show('keypoints (no bbox in results)', run(DATA + '/keypoints_gt.json', kps, 'keypoints'))
