"""gemmgan_sc.models"""
