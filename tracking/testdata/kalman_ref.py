# Port of the maths of nwojke/deep_sort deep_sort/kalman_filter.py (numpy
# only; scipy's cho_solve replaced by numpy.linalg.solve, which is equal up to
# rounding). Run with `/usr/bin/python3 kalman_ref.py` to regenerate the
# values hard-coded in ../kalman_test.go (TestKalmanMatchesReference).
import numpy as np

np.set_printoptions(precision=17)
wp, wv = 1.0 / 20, 1.0 / 160
F = np.eye(8)
for i in range(4):
    F[i, 4 + i] = 1.0
H = np.eye(4, 8)


def initiate(m):
    mean = np.r_[m, np.zeros(4)]
    std = [2 * wp * m[3], 2 * wp * m[3], 1e-2, 2 * wp * m[3],
           10 * wv * m[3], 10 * wv * m[3], 1e-5, 10 * wv * m[3]]
    return mean, np.diag(np.square(std))


def predict(mean, cov):
    std = [wp * mean[3], wp * mean[3], 1e-2, wp * mean[3],
           wv * mean[3], wv * mean[3], 1e-5, wv * mean[3]]
    mean = F @ mean
    cov = F @ cov @ F.T + np.diag(np.square(std))
    return mean, cov


def project(mean, cov):
    std = [wp * mean[3], wp * mean[3], 1e-1, wp * mean[3]]
    return H @ mean, H @ cov @ H.T + np.diag(np.square(std))


def update(mean, cov, z):
    pm, pc = project(mean, cov)
    K = np.linalg.solve(pc, (cov @ H.T).T).T
    mean = mean + (z - pm) @ K.T
    cov = cov - K @ pc @ K.T
    return mean, cov


def gating(mean, cov, z):
    pm, pc = project(mean, cov)
    L = np.linalg.cholesky(pc)
    d = np.linalg.solve(L, z - pm)
    return float(d @ d)


meas = [np.array(v) for v in [
    [100.0, 200.0, 0.5, 80.0],
    [104.0, 203.0, 0.52, 82.0],
    [109.0, 205.0, 0.49, 81.0],
    [113.5, 209.0, 0.5, 84.0],
]]
mean, cov = initiate(meas[0])
for z in meas[1:]:
    mean, cov = predict(mean, cov)
    print("gate", repr(gating(mean, cov, z)))
    mean, cov = update(mean, cov, z)
mean, cov = predict(mean, cov)
print("mean", repr(mean.tolist()))
print("cov", repr(cov.tolist()))
