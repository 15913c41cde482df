"""gemmgan_sc.train"""
