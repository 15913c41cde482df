"""gemmgan_sc.nn"""
