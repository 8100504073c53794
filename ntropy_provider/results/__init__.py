"""Enriched results to Arrow and Parquet: conversion, atomic writing, carrying input columns."""
