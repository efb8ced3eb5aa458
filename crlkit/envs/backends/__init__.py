"""envs/backends"""
